"""SASRec (Kang & McAuley, ICDM 2018), as in the DLLM2Rec reference code (docs/method.md §3).

Item + positional embedding -> causal self-attention block(s) (pre-norm, residual) -> state at
position len_seq - 1 -> linear scorer. With right padding and a causal mask the read position
only attends to real items. DROS is this model trained with the DRO loss (`alpha > 0`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill.config import TrainConfig
from distill.students.base import Dropout, SequentialRecommender, last_state


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        batch, length, dim = queries.shape
        q = self.query(queries)
        k, v = self.key_value(keys).split(dim, dim=2)
        q, k, v = (t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                             dropout_p=self.dropout if self.training else 0.0)
        return out.transpose(1, 2).reshape(batch, length, dim)


class FeedForward(nn.Module):
    """Position-wise feed-forward with its own residual and LayerNorm (reference layout)."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.inner = nn.Linear(dim, dim)
        self.outer = nn.Linear(dim, dim)
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.outer(F.relu(self.inner(x)))))


class Block(nn.Module):
    """Reference layout: queries are the normalised input, keys the raw input (SASRecModules);
    attention dropout acts on the attention weights, the feed-forward output has its own."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.ln_attention = nn.LayerNorm(dim)
        self.attention = CausalSelfAttention(dim, heads, dropout)
        self.ln_feed_forward = nn.LayerNorm(dim)
        self.feed_forward = FeedForward(dim, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        queries = self.ln_attention(x)
        x = queries + self.attention(queries, x)
        return self.feed_forward(self.ln_feed_forward(x)) * mask


class SASRec(SequentialRecommender):
    def __init__(self, config: TrainConfig, num_items: int, max_len: int, teacher_embeddings=None):
        super().__init__(config, num_items, max_len, teacher_embeddings)
        self.positions = nn.Embedding(max_len, config.hidden)
        self.embedding_dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config.hidden, config.num_heads, config.dropout)
                                    for _ in range(config.num_blocks))
        self.ln_final = nn.LayerNorm(config.hidden)

    def encode(self, emb: torch.Tensor, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        mask = self.padding_mask(seq)
        x = self.embedding_dropout(emb + self.positions.weight[: seq.shape[1]]) * mask
        for block in self.blocks:
            x = block(x, mask)
        return last_state(self.ln_final(x), len_seq)
