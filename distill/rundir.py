"""A trained student's run directory (docs/architecture.md §5): metrics.json, config.json,
model.safetensors (inference weights) and items.json, with the protocol its numbers were measured under."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from distill.config import TrainConfig
from distill.data.dataset import PreparedDataset
from distill.evaluate import CUTOFFS
from distill.io import atomic_directory, write_json
from distill.train import SELECTION_METRIC, TrainResult


def protocol(dataset: PreparedDataset, config: TrainConfig) -> dict:
    """What every reported number was measured under (docs/method.md §6: always stored with the numbers)."""
    return {
        "split": dataset.stats.get("split", "time"),
        "cutoffs": list(CUTOFFS),
        "ranking": "full (all items), ties count against the target",
        "selection": f"{config.selection} {SELECTION_METRIC}",
        "eval_mode": config.eval_mode,
        "test_reported_at": f"best {config.selection} epoch",
        "seed": config.seed,
        "dataset_hash": dataset.content_hash,
    }


def save_run(result: TrainResult, dataset: PreparedDataset, out: str | Path, teacher=None) -> dict:
    """Write RUNDIR: metrics.json, config.json, model.safetensors (inference weights), items.json.

    The teacher term of a distilled student is folded into its item table, so the saved student
    needs no teacher at inference: a plain embedding lookup, as fast as the undistilled one.
    """
    model = result.model
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
             if not k.startswith("item_embedding.projector.")}
    with torch.no_grad():
        state["item_embedding.ids.weight"] = model.item_embedding.folded_weight().detach().cpu().contiguous()
    metrics = {
        "val": result.val,
        "test": result.test,
        "best_epoch": result.best_epoch,
        "stopped_by": result.stopped_by,      # "patience" | "epochs"; readers: .get() (None before it was kept)
        "epochs_run": result.epochs_run,
        "lam": result.lam,
        "lam_auto": result.lam_auto,
        "distilled": result.distilled,
        "seconds": result.seconds,
        "protocol": protocol(dataset, result.config),
        "config": result.config.to_dict(),
        "teacher": {**teacher.meta["teacher"], "k": teacher.k, "dim": teacher.dim} if teacher is not None else None,
        "epochs": result.history,
    }
    with atomic_directory(out) as tmp:
        save_file(state, str(tmp / "model.safetensors"))
        write_json(tmp / "config.json", {"config": result.config.to_dict(), "num_items": dataset.num_items,
                                         "max_len": dataset.max_len, "dataset_hash": dataset.content_hash,
                                         "format_version": 1})
        write_json(tmp / "items.json", {"ids": dataset.item_ids, "titles": dataset.titles})
        write_json(tmp / "metrics.json", metrics)
    return metrics
