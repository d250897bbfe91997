"""Full-ranking evaluation: HR, NDCG and MRR at K over all items (docs/method.md §6).

A target's rank is 1 + the number of items scored strictly higher + the number of other items
scored equally (ties count against the model, so a constant scorer gets no credit). That needs
one comparison per item, not a sort. NDCG@K = 1 / log2(rank + 1) if rank <= K, MRR@K = 1 / rank.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from distill.data.dataset import Split

CUTOFFS = (1, 5, 10, 20, 50)


def metrics_from_ranks(ranks: np.ndarray | torch.Tensor, cutoffs=CUTOFFS) -> dict[str, float]:
    """ranks: 1-based rank of each target (np.inf or 0 = not ranked) -> {"hr@k", "ndcg@k", "mrr@k"}."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    found = ranks >= 1
    metrics = {}
    for k in cutoffs:
        hit = found & (ranks <= k)
        safe = torch.where(hit, ranks, torch.ones_like(ranks))
        metrics[f"hr@{k}"] = float(hit.double().mean())
        metrics[f"ndcg@{k}"] = float(torch.where(hit, 1.0 / torch.log2(safe + 1), 0.0).mean())
        metrics[f"mrr@{k}"] = float(torch.where(hit, 1.0 / safe, 0.0).mean())
    return metrics


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target among all items, ties counted against the target: [B]."""
    target_scores = scores.gather(1, targets.unsqueeze(1))
    return (scores >= target_scores).sum(1, dtype=torch.int32)


def _scores_in_batches(model, split: Split, batch_size: int, device=None, rows: int | None = None):
    """Yield (start, end, scores [B, num_items]) for the split's first `rows` instances (all by
    default): eval mode, no gradients, the item table frozen, training mode restored afterwards."""
    rows = len(split) if rows is None else rows
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    seq = torch.as_tensor(split.seq[:rows], device=device)
    len_seq = torch.as_tensor(split.len_seq[:rows], device=device)
    table = model.item_embedding.frozen_table() if hasattr(model, "item_embedding") else contextlib.nullcontext()
    try:
        with torch.no_grad(), table:
            for start in range(0, rows, batch_size):
                end = min(start + batch_size, rows)
                yield start, end, model(seq[start:end], len_seq[start:end])
    finally:
        model.train(was_training)


def evaluate(model, split: Split, cutoffs=CUTOFFS, batch_size: int = 256, device=None) -> dict[str, float]:
    """HR/NDCG/MRR@K of a student on one split, full ranking, eval mode, no gradients, batched."""
    if len(split) == 0:
        return {}
    targets = torch.as_tensor(split.next)
    ranks = [target_ranks(scores, targets[start:end].to(scores.device))
             for start, end, scores in _scores_in_batches(model, split, batch_size, device)]
    return metrics_from_ranks(torch.cat(ranks).cpu(), cutoffs)


def teacher_metrics(topk_ids: np.ndarray, targets: np.ndarray, cutoffs=CUTOFFS) -> dict[str, float]:
    """The teacher's metrics from its top-K lists; only cutoffs <= K can be computed."""
    k = topk_ids.shape[1]
    hits = topk_ids == targets[:, None]
    found = hits.any(1)
    ranks = np.where(found, hits.argmax(1) + 1, 0)
    return metrics_from_ranks(ranks, [c for c in cutoffs if c <= k])


def teacher_report(artifacts, dataset) -> dict:
    """A teacher's own HR/NDCG/MRR on val and test, shaped like a student's metrics.json."""
    # A --limit smoke run ranks the first rows of each split only.
    report = {split: teacher_metrics(artifacts.ids[split], dataset.split(split).next[:len(artifacts.ids[split])])
              for split in ("val", "test") if split in artifacts.ids}
    report["protocol"] = {"split": dataset.stats.get("split", "time"), "cutoffs": [c for c in CUTOFFS if c <= artifacts.k],
                          "ranking": f"the teacher's top-{artifacts.k} list", "dataset_hash": dataset.content_hash}
    report["teacher"] = artifacts.meta["teacher"]
    return report


def most_popular_metrics(train: Split, split: Split, num_items: int, cutoffs=CUTOFFS) -> dict[str, float]:
    """The most-popular baseline: every history gets the items most often seen as training targets."""
    counts = torch.as_tensor(np.bincount(train.next, minlength=num_items), dtype=torch.float64)
    scores = counts.unsqueeze(0).expand(len(split), -1)
    return metrics_from_ranks(target_ranks(scores, torch.as_tensor(split.next)), cutoffs)


def topk_overlap(model, split: Split, teacher_ids: np.ndarray, k: int = 20, batch_size: int = 256,
                 device=None) -> float:
    """Mean share of the teacher's top-k items that the student also ranks in its top-k, over the
    split's instances (the first len(teacher_ids) of them): how much of the teacher's ranking the
    student reproduces. k is capped by the teacher's list length."""
    rows = min(len(split), len(teacher_ids))
    k = min(k, teacher_ids.shape[1]) if teacher_ids.ndim == 2 else 0
    if rows == 0 or k == 0:
        return float("nan")
    teacher = torch.as_tensor(np.ascontiguousarray(teacher_ids[:rows, :k]))
    shared = 0
    for start, end, scores in _scores_in_batches(model, split, batch_size, device, rows):
        top = scores.topk(k, dim=1).indices
        shared += int((top.unsqueeze(2) == teacher[start:end].to(top.device).unsqueeze(1)).any(2).sum())
    return shared / (rows * k)
