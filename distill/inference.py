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


def exclude_items(scores: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """`scores` [B, N] with the items of `exclude` [B, E] (int64) set to -inf. `exclude` is padded
    with N (the padding id): an extra column takes those entries and is dropped, so padding excludes
    nothing. Plain tensor ops, so the exported models (ONNX, TorchScript) trace it as it is."""
    full = torch.cat([scores, torch.zeros_like(scores[:, :1])], dim=1)
    return full.scatter(1, exclude, torch.full_like(exclude, float("-inf"), dtype=scores.dtype))[:, :-1]


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

    def recommend(self, history: list[str], k: int = 10, exclude_history: bool = True) -> tuple[list[str], list[float]]:
        """The top-k item ids (and scores) after one history of raw item ids, best first."""
        return self.recommend_many([history], k, exclude_history)[0]

    @torch.no_grad()
    def recommend_many(self, histories: list[list[str]], k: int = 10,
                       exclude_history: bool = True) -> list[tuple[list[str], list[float]]]:
        """The top-k after each of `histories` in one forward pass: [(ids, scores)] in their order.
        A history longer than max_len keeps its last max_len items; with `exclude_history` every item
        of the whole history is left out, so a row may answer fewer than k items."""
        if k < 1:
            raise DistillError(f"k={k}: must be at least 1")
        index, pad = self.index, len(self.item_ids)
        rows = []
        for n, history in enumerate(histories):
            where = f"history {n}" if len(histories) > 1 else "history"
            if not history:
                raise DistillError(f"{where} is empty; give at least one item id")
            unknown = [raw for raw in history if raw not in index]
            if unknown:
                raise DistillError(f"{where}: item(s) {', '.join(map(repr, unknown[:5]))}"
                                   f"{f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''} are not in "
                                   f"this run's catalogue of {len(self.item_ids)} items; use item ids as in the "
                                   "uploaded data")
            rows.append([index[raw] for raw in history])
        device = next(self.model.parameters()).device
        seq = torch.full((len(rows), self.max_len), pad, dtype=torch.long)
        lengths = torch.empty(len(rows), dtype=torch.long)
        widest = max(len(r) for r in rows) if exclude_history else 1
        exclude = torch.full((len(rows), widest), pad, dtype=torch.long)
        for n, row in enumerate(rows):
            window = row[-self.max_len:]
            seq[n, :len(window)] = torch.tensor(window)
            lengths[n] = len(window)
            if exclude_history:
                exclude[n, :len(row)] = torch.tensor(row)
        scores = exclude_items(self.model(seq.to(device), lengths.to(device)), exclude.to(device))
        top = scores.topk(min(k, pad), dim=1)
        values, indices = top.values.cpu(), top.indices.cpu()
        keep = torch.isfinite(values).sum(1).tolist()
        ids = [[self.item_ids[i] for i in row[:n]] for row, n in zip(indices.tolist(), keep)]
        return [(row_ids, row[:n]) for row_ids, row, n in zip(ids, values.tolist(), keep)]
