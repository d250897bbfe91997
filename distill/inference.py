"""A saved student loaded for inference (`python -m distill recommend`, the service's /recommend)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from distill.config import TrainConfig
from distill.errors import DistillError
from distill.io import read_json
from distill.students import SequentialRecommender, build_student


@dataclass
class TrainedStudent:
    """A saved student loaded for inference: raw ids in, raw ids out."""

    model: SequentialRecommender
    config: TrainConfig
    item_ids: list[str]
    titles: list[str]
    max_len: int
    index: dict[str, int] = field(init=False)   # raw item id -> internal id, built once

    def __post_init__(self) -> None:
        self.index = {raw: i for i, raw in enumerate(self.item_ids)}

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "TrainedStudent":
        path = Path(path)
        meta = read_json(path / "config.json")
        items = read_json(path / "items.json")
        config = TrainConfig.from_options(meta["config"])
        model = build_student(config, meta["num_items"], meta["max_len"])
        try:
            state = load_file(str(path / "model.safetensors"))
        except Exception as exc:
            raise DistillError(f"{path / 'model.safetensors'}: cannot read ({exc})") from None
        model.load_state_dict(state)
        model.to(device).eval()
        return cls(model=model, config=config, item_ids=items["ids"], titles=items["titles"],
                   max_len=meta["max_len"])

    @torch.no_grad()
    def recommend(self, history: list[str], k: int = 10, exclude_history: bool = True) -> tuple[list[str], list[float]]:
        index = self.index
        unknown = [raw for raw in history if raw not in index]
        if unknown:
            raise DistillError(f"history item(s) {', '.join(map(repr, unknown[:5]))} are not in this run's "
                               f"catalogue of {len(self.item_ids)} items; use item ids as in the uploaded data")
        if not history:
            raise DistillError("history is empty; give at least one item id")
        if k < 1:
            raise DistillError(f"k={k}: must be at least 1")
        ids = [index[raw] for raw in history][-self.max_len:]
        pad = len(self.item_ids)
        device = next(self.model.parameters()).device
        seq = torch.tensor([ids + [pad] * (self.max_len - len(ids))], device=device)
        scores = self.model(seq, torch.tensor([len(ids)], device=device))[0]
        if exclude_history:
            scores[torch.tensor([index[raw] for raw in history], device=device)] = -torch.inf
        top = scores.topk(min(k, int(torch.isfinite(scores).sum())))
        return [self.item_ids[i] for i in top.indices.tolist()], top.values.tolist()
