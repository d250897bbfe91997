"""GRU4Rec (Hidasi et al., ICLR 2016), as in the DLLM2Rec reference code (docs/method.md §3).

Item embedding -> GRU -> hidden state at the last real position -> linear scorer. Histories are
right-padded, and a GRU only looks backwards, so running it over the padded window and reading
position len_seq - 1 equals running it on the unpadded history (no packing needed).
"""

from __future__ import annotations

import torch
from torch import nn

from distill.config import TrainConfig
from distill.students.base import SequentialRecommender, last_state


class GRU4Rec(SequentialRecommender):
    def __init__(self, config: TrainConfig, num_items: int, max_len: int, teacher_embeddings=None):
        super().__init__(config, num_items, max_len, teacher_embeddings)
        self.gru = nn.GRU(config.hidden, config.hidden, num_layers=config.gru_layers, batch_first=True)

    def encode(self, emb: torch.Tensor, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(emb)
        return last_state(states, len_seq)
