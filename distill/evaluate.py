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
    return {name: float(values.mean()) for name, values in instance_metrics_from_ranks(ranks, cutoffs).items()}


def instance_metrics_from_ranks(ranks: np.ndarray | torch.Tensor, cutoffs=CUTOFFS) -> dict[str, torch.Tensor]:
    """Each instance's own HR/NDCG/MRR@K (float64 [N]); their means are `metrics_from_ranks`."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    found = ranks >= 1
    metrics = {}
    for k in cutoffs:
        hit = found & (ranks <= k)
        safe = torch.where(hit, ranks, torch.ones_like(ranks))
        metrics[f"hr@{k}"] = hit.double()
        metrics[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(safe + 1), 0.0)
        metrics[f"mrr@{k}"] = torch.where(hit, 1.0 / safe, 0.0)
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
    return metrics_from_ranks(_split_ranks(model, split, batch_size, device), cutoffs)


def per_user_scores(model, split: Split, cutoffs=(20,), batch_size: int = 256, device=None) -> dict[str, np.ndarray]:
    """Each instance's HR/NDCG/MRR@K on one split (float64 [len(split)], the split's order), ranked
    as `evaluate` ranks them: their means are `evaluate`'s numbers. One instance per user under a
    leave-one-out split; `per_user_mean` averages a user's instances under the time split."""
    ranks = _split_ranks(model, split, batch_size, device) if len(split) else torch.zeros(0)
    return {name: values.numpy() for name, values in instance_metrics_from_ranks(ranks, cutoffs).items()}


def per_user_mean(scores: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average per-instance `scores` over each user's instances: (sorted unique users, their means)."""
    scores, users = np.asarray(scores, dtype=np.float64), np.asarray(users)
    if scores.shape != users.shape:
        raise ValueError(f"per_user_mean: {scores.size} scores for {users.size} user ids; give one user id per instance")
    unique, inverse = np.unique(users, return_inverse=True)
    return unique, np.bincount(inverse, weights=scores) / np.bincount(inverse)


def _split_ranks(model, split: Split, batch_size: int, device=None) -> torch.Tensor:
    """The 1-based full-ranking rank of every target of the split, on the CPU: [len(split)]."""
    targets = torch.as_tensor(split.next)
    ranks = [target_ranks(scores, targets[start:end].to(scores.device))
             for start, end, scores in _scores_in_batches(model, split, batch_size, device)]
    return torch.cat(ranks).cpu()


def teacher_metrics(topk_ids: np.ndarray, targets: np.ndarray, cutoffs=CUTOFFS) -> dict[str, float]:
    """The teacher's metrics from its top-K lists; only cutoffs <= K can be computed."""
    return metrics_from_ranks(_teacher_ranks(topk_ids, targets), [c for c in cutoffs if c <= topk_ids.shape[1]])


def teacher_per_user_scores(topk_ids: np.ndarray, targets: np.ndarray, cutoffs=(20,)) -> dict[str, np.ndarray]:
    """Each instance's teacher HR/NDCG/MRR@K from its top-K lists (float64 [N]), the per-instance
    form of `teacher_metrics`; only cutoffs <= K can be computed."""
    ranks = _teacher_ranks(topk_ids, targets)
    kept = [c for c in cutoffs if c <= topk_ids.shape[1]]
    return {name: values.numpy() for name, values in instance_metrics_from_ranks(ranks, kept).items()}


def _teacher_ranks(topk_ids: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The target's 1-based position in each top-K list, 0 where the list misses it."""
    hits = topk_ids == targets[:, None]
    return np.where(hits.any(1), hits.argmax(1) + 1, 0)


def teacher_report(artifacts, dataset) -> dict:
    """A teacher's own HR/NDCG/MRR on val and test, shaped like a student's metrics.json; on the rows
    it ranked: a --limit smoke run's first rows, an eval_sample's sampled rows (their count recorded
    in protocol.ranked_instances), else every row."""
    report, sampled = {}, {}
    for split in ("val", "test"):
        if split not in artifacts.ids:
            continue
        ids = artifacts.ids[split]
        targets = dataset.split(split).next[:len(ids)]
        rows = artifacts.ranked_rows(split)
        if rows is not None:
            ids, targets = ids[rows], targets[rows]
            sampled[split] = int(rows.sum())
        report[split] = teacher_metrics(ids, targets)
    report["protocol"] = {"split": dataset.stats.get("split", "time"), "cutoffs": [c for c in CUTOFFS if c <= artifacts.k],
                          "ranking": f"the teacher's top-{artifacts.k} list", "dataset_hash": dataset.content_hash}
    if sampled:
        report["protocol"]["ranked_instances"] = sampled
    report["teacher"] = artifacts.meta["teacher"]
    return report


def most_popular_metrics(train: Split, split: Split, num_items: int, cutoffs=CUTOFFS) -> dict[str, float]:
    """The most-popular baseline: every history gets the items most often seen as training targets."""
    counts = torch.as_tensor(np.bincount(train.next, minlength=num_items), dtype=torch.float64)
    scores = counts.unsqueeze(0).expand(len(split), -1)
    return metrics_from_ranks(target_ranks(scores, torch.as_tensor(split.next)), cutoffs)


def topk_overlap(model, split: Split, teacher_ids: np.ndarray, k: int = 20, batch_size: int = 256,
                 device=None, ranked: np.ndarray | None = None) -> float:
    """Mean share of the teacher's top-k items that the student also ranks in its top-k, over the
    split's instances the teacher ranked (the first len(teacher_ids) of them; with a `ranked` mask,
    an eval_sample's, those it marks): how much of the teacher's ranking the student reproduces.
    k is capped by the teacher's list length."""
    rows = min(len(split), len(teacher_ids))
    k = min(k, teacher_ids.shape[1]) if teacher_ids.ndim == 2 else 0
    mask = None if ranked is None else torch.as_tensor(np.asarray(ranked[:rows], dtype=bool))
    counted = rows if mask is None else int(mask.sum())
    if counted == 0 or k == 0:
        return float("nan")
    teacher = torch.as_tensor(np.ascontiguousarray(teacher_ids[:rows, :k]))
    shared = 0
    for start, end, scores in _scores_in_batches(model, split, batch_size, device, rows):
        top = scores.topk(k, dim=1).indices
        hits = (top.unsqueeze(2) == teacher[start:end].to(top.device).unsqueeze(1)).any(2).sum(1)
        shared += int(hits.sum() if mask is None else hits[mask[start:end].to(hits.device)].sum())
    return shared / (counted * k)
