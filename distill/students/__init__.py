"""Sequential students, one per file, one registry (docs/method.md §3)."""

from __future__ import annotations

import torch

from distill.config import TrainConfig
from distill.students.base import SequentialRecommender
from distill.students.caser import Caser
from distill.students.gru4rec import GRU4Rec
from distill.students.sasrec import SASRec

# DROS is SASRec trained with the DRO loss; the config's `dro_alpha` switches that loss on.
REGISTRY: dict[str, type[SequentialRecommender]] = {
    "gru4rec": GRU4Rec,
    "sasrec": SASRec,
    "dros": SASRec,
    "caser": Caser,
}


def build_student(config: TrainConfig, num_items: int, max_len: int,
                  teacher_embeddings: torch.Tensor | None = None) -> SequentialRecommender:
    return REGISTRY[config.student](config, num_items, max_len, teacher_embeddings)


__all__ = ["REGISTRY", "SequentialRecommender", "build_student"]
