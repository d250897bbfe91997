"""The interface every student shares (RecBole's sequential recommenders are the model).

A student maps a batch of right-padded histories `seq` [B, L] (padding id = num_items) and their
true lengths `len_seq` [B] to one score per item, [B, num_items]. The subclass implements only
`encode` (input embeddings -> one state vector per history); the item embedding (with optional
collaborative embedding distillation) and the linear scorer over items live here.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from distill.config import TrainConfig, resolve_device
from distill.embedding import ItemEmbedding, resolve_precision


class SequentialRecommender(nn.Module):
    def __init__(self, config: TrainConfig, num_items: int, max_len: int,
                 teacher_embeddings: torch.Tensor | None = None):
        super().__init__()
        self.num_items = num_items
        self.max_len = max_len
        dtype = resolve_precision(config.distill_precision, resolve_device(config.device))
        self.item_embedding = ItemEmbedding(num_items, config.hidden, teacher_embeddings,
                                            config.ed_weight, config.projector, dtype)
        self.scorer = nn.Linear(self.state_size(config), num_items)
        self._dropout_on = False

    def train(self, mode: bool = True) -> "SequentialRecommender":
        # Inside `dropout_in_evaluation`, eval() keeps every module in training mode.
        return super().train(mode or getattr(self, "_dropout_on", False))

    @contextlib.contextmanager
    def dropout_in_evaluation(self, seed: int):
        """Score as the reference code does (it never calls model.eval()): while the block runs,
        `eval()` leaves dropout on, and the dropout masks come from the global RNG re-seeded with
        `seed` inside a fork of it. Scores are then the same on every call with the same seed and
        weights, and the training run's own random stream is not advanced."""
        device = next(self.parameters()).device
        devices = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.default_generators[devices[0]].manual_seed(seed)
            self._dropout_on = True
            try:
                yield
            finally:
                self._dropout_on = False

    def state_size(self, config: TrainConfig) -> int:
        return config.hidden

    def encode(self, emb: torch.Tensor, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def state(self, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        """One state vector per history: [B, state size]."""
        return self.encode(self.item_embedding(seq), seq, len_seq)

    def forward(self, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each history: [B, num_items]."""
        return self.scorer(self.state(seq, len_seq))

    def score_items(self, state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of chosen items only, [B, M] for items [B, M]: what the losses need in training.

        Equal to `scorer(state).gather(1, items)`, but its backward touches M rows of the scorer
        instead of materialising a [B, num_items] gradient.
        """
        # F.embedding rather than indexing: its CPU backward is deterministic, index_put's is not.
        weight = F.embedding(items, self.scorer.weight)                        # [B, M, d]
        bias = F.embedding(items, self.scorer.bias.unsqueeze(1)).squeeze(2)    # [B, M]
        return torch.bmm(weight, state.unsqueeze(2)).squeeze(2) + bias

    def padding_mask(self, seq: torch.Tensor) -> torch.Tensor:
        return (seq != self.num_items).unsqueeze(-1).to(torch.get_default_dtype())


class Dropout(nn.Module):
    """Inverted dropout whose CPU mask costs a fifth of `nn.Dropout`'s.

    On CPU, torch's Bernoulli sampler draws one 32-bit number per element, which made dropout
    a third of a SASRec training step. Here each 64-bit draw gives four 16-bit uniforms, compared
    against p at 1/65536 resolution. Same distribution, same global RNG (so seeding still makes
    training deterministic); on CUDA the regular kernel is already fast and is used.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = -32768 + round(p * 65536)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, True)
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2**63, None).view(torch.int16)[:n]
        keep = (bits >= self.threshold).view(x.shape)
        return x * keep / (1 - self.p)


def last_state(states: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
    """Hidden state at position len_seq - 1 of each row: [B, L, d] -> [B, d]."""
    index = (len_seq - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
    return states.gather(1, index).squeeze(1)
