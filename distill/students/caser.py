"""Caser (Tang & Wang, WSDM 2018), as in the DLLM2Rec reference code.

The history window is an L x d "image": horizontal filters of heights h (default 2, 3, 4) spanning
the full embedding width, max-pooled over time, capture union-level patterns; one vertical filter
over the L positions captures point-level patterns. Padding rows are zeroed first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill.config import TrainConfig
from distill.students.base import Dropout, SequentialRecommender


class Caser(SequentialRecommender):
    def __init__(self, config: TrainConfig, num_items: int, max_len: int, teacher_embeddings=None):
        self.filter_sizes = [h for h in config.filter_size_list if h <= max_len]
        self.num_filters = config.num_filters
        super().__init__(config, num_items, max_len, teacher_embeddings)
        self.horizontal = nn.ModuleList(nn.Conv2d(1, config.num_filters, (h, config.hidden))
                                        for h in self.filter_sizes)
        self.vertical = nn.Conv2d(1, 1, (max_len, 1))
        for conv in [*self.horizontal, self.vertical]:
            nn.init.xavier_normal_(conv.weight)
            nn.init.constant_(conv.bias, 0.1)
        self.dropout = Dropout(config.dropout)

    def state_size(self, config: TrainConfig) -> int:
        return config.hidden + self.num_filters * len(self.filter_sizes)

    def encode(self, emb: torch.Tensor, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        image = (emb * self.padding_mask(seq)).unsqueeze(1)                    # [B, 1, L, d]
        pooled = [F.relu(conv(image)).squeeze(3).amax(dim=2) for conv in self.horizontal]
        vertical = F.relu(self.vertical(image)).flatten(1)                     # [B, d]
        return self.dropout(torch.cat([*pooled, vertical], dim=1))
