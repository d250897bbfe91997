"""The reliability report: the paper's analyses of a run, on the user's own test set (docs/method.md
"Reliability report").

Everything is computed from top-k id lists on `dataset.test`, one list per role ("teacher",
"baseline", "distilled"), so a report needs no model once the lists exist (`student_topk` makes a
student's). Sections:

- `hits`: where the teacher hits and a student misses, and vice versa, before and after distillation;
- `overlap`: mean share of the teacher's top-k a student reproduces;
- `by_popularity`: metrics per target-popularity bucket (head / torso / tail);
- `by_history`: metrics per history-length bucket;
- `teacher_reliability`: the teacher's HR per confidence quantile bin (`teacher_confidence`);
- `beyond_accuracy`: coverage, average recommended popularity and tail share of each role's lists.

A student's HR/NDCG here come from its top-k list (rank = position of the target), so ties in the
scores are broken by `torch.topk`, not counted against the target as `distill.evaluate` counts them:
the numbers equal `evaluate`'s except on exactly tied scores. The teacher may cover only the first
rows of test (a `--limit` smoke run) or keep fewer than k items: its sections use the rows and
columns it has, and `notes` says so. No Python loop runs over instances, items or candidates.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch

from distill.evaluate import _scores_in_batches

ROLES = ("teacher", "baseline", "distilled")
STUDENT_ROLES = ("baseline", "distilled")
# Popularity buckets by cumulative share of training interactions (items from most to least
# popular): an item is head while the items before it hold < 50% of the interactions, torso while
# they hold < 80%, tail after that.
POPULARITY_SHARES = (0.5, 0.8)
POPULARITY_BUCKETS = ("head", "torso", "tail")
# History-length buckets: lower bounds of len_seq (the last bucket is open).
HISTORY_EDGES = (1, 3, 5, 10, 20)
RELIABILITY_BINS = 10
CONFIDENCE_METHODS = ("distance", "softmax")
DIGITS = 6


def student_topk(model, split, k: int = 20, batch_size: int = 512, device=None) -> np.ndarray:
    """Item ids of each instance's top-k under `model`, best first: int64 [len(split), k].

    Scored as `distill.evaluate` scores (eval mode, no gradients, batched, the full catalogue
    0..num_items-1 with history items kept; the padding id is never a column)."""
    rows = len(split)
    if k < 1:
        raise ValueError(f"student_topk: k={k}; must be at least 1")
    if rows == 0:
        return np.zeros((0, k), dtype=np.int64)
    parts = []
    for _, _, scores in _scores_in_batches(model, split, batch_size, device):
        if k > scores.shape[1]:
            raise ValueError(f"student_topk: k={k} but the model scores only {scores.shape[1]} items")
        parts.append(scores.topk(k, dim=1).indices.cpu())
    return torch.cat(parts).numpy().astype(np.int64, copy=False)


def teacher_confidence(source, split: str = "test", method: str = "distance") -> np.ndarray | None:
    """The teacher's confidence in its top-1 item per instance, higher = more confident: float64 [N].

    `source`: TeacherArtifacts, the arrays of its ranks.safetensors (a mapping with "{split}_dist"),
    a mapping {split: distances}, or the distances array itself ([N, K], ascending: column 0 is the
    top-1). `method="distance"` (default): -d_1, the negated L2 distance from the teacher's
    generated answer to its top-1 item (an answer that names a catalogue title almost exactly is
    close to it); `"softmax"`: exp(-d_1) / sum_k exp(-d_k), the reference code's confidence weight
    of the top-1 candidate (row minimum subtracted before exp). The ground-truth distance
    (`target_dist`) is never used: it knows the answer. None when `source` has no such split."""
    if method not in CONFIDENCE_METHODS:
        raise ValueError(f"teacher_confidence: method={method!r}; expected one of {', '.join(CONFIDENCE_METHODS)}")
    if hasattr(source, "distances"):
        dist = source.distances.get(split)
    elif isinstance(source, Mapping):
        dist = source.get(f"{split}_dist", source.get(split))
    else:
        dist = source
    if dist is None:
        return None
    dist = np.asarray(dist, dtype=np.float64)
    if dist.ndim == 1:
        dist = dist[:, None]
    if dist.ndim != 2 or dist.shape[1] == 0:
        raise ValueError(f"teacher_confidence: distances of shape {list(dist.shape)}; expected [N, K]")
    if method == "distance":
        return -dist[:, 0]
    shifted = np.exp(-(dist - dist.min(1, keepdims=True)))
    return shifted[:, 0] / shifted.sum(1)


def build_report(dataset, topk: Mapping[str, np.ndarray], teacher_confidence: np.ndarray | None = None,
                 k: int = 20, bins: int = RELIABILITY_BINS) -> dict:
    """The reliability report of one run on `dataset.test` (JSON-serialisable, floats to 6 digits).

    `topk`: role -> top-k id lists on dataset.test, best first. Students ("baseline", "distilled")
    need every test row and >= k columns; the teacher may cover only the first rows or have fewer
    columns (its sections then use what it has). `teacher_confidence`: one value per teacher row
    (higher = more confident), see `teacher_confidence()`."""
    if k < 1:
        raise ValueError(f"build_report: k={k}; must be at least 1")
    test, num_items = dataset.test, dataset.num_items
    n = len(test)
    targets = np.asarray(test.next, dtype=np.int64)
    lists = _check_lists(topk, n, k, num_items)
    notes: list[str] = []
    missing: dict[str, str] = {}

    teacher = lists.get("teacher")
    teacher_rows = 0 if teacher is None else teacher.shape[0]
    teacher_k = 0 if teacher is None else min(k, teacher.shape[1])
    if teacher is None:
        reason = "no teacher top-k lists on test"
        missing.update(hits=reason, overlap=reason, teacher_reliability=reason)
    else:
        teacher = teacher[:, :teacher_k]
        lists["teacher"] = teacher
        if teacher_rows < n:
            notes.append(f"the teacher ranked only the first {teacher_rows:,} of {n:,} test instances (a --limit "
                         f"smoke run?): hits, overlap, teacher reliability and every teacher number use those rows")
        if teacher_k < k:
            notes.append(f"the teacher keeps {teacher_k} items per instance, fewer than k={k}: hits and overlap "
                         f"compare top-{teacher_k} lists, and teacher numbers are @{teacher_k}")

    counts = np.bincount(np.asarray(dataset.train.next, dtype=np.int64), minlength=num_items)[:num_items]
    item_bucket, item_share = popularity_buckets(counts)
    if counts.sum() == 0:
        notes.append("no training targets: every item counts as tail")
    roles = [r for r in ROLES if r in lists] + sorted(r for r in lists if r not in ROLES)
    # per role: (hr [rows], ndcg [rows]) at the role's own cutoff
    scores = {role: _list_metrics(lists[role], targets[:lists[role].shape[0]]) for role in roles}

    report = {"k": int(k), "rows": int(n), "num_items": int(num_items), "roles": roles,
              "teacher_rows": int(teacher_rows), "teacher_k": int(teacher_k)}
    students = [r for r in STUDENT_ROLES if r in lists]
    if teacher is not None and students and teacher_rows:
        report["hits"] = _hits(teacher, {r: lists[r][:teacher_rows, :teacher_k] for r in students},
                               targets[:teacher_rows])
        report["overlap"] = _overlap(teacher, {r: lists[r][:teacher_rows, :teacher_k] for r in students})
    else:
        report["hits"] = report["overlap"] = None
        if teacher is not None:
            missing["hits"] = missing["overlap"] = ("no student top-k lists" if not students
                                                    else "the teacher ranked no test instance")

    target_bucket = item_bucket[targets]
    report["by_popularity"] = {
        "rule": "items sorted by training-target count (ties by id); head while the items before hold < 50% "
                "of training interactions, torso while < 80%, tail after (unseen items are tail)",
        "shares": list(POPULARITY_SHARES),
        "buckets": _by_bucket(target_bucket, list(POPULARITY_BUCKETS), scores, keep_empty=True,
                              extra=[{"items": int((item_bucket == b).sum()), "train_share": _r(item_share[b])}
                                     for b in range(len(POPULARITY_BUCKETS))]),
    }
    history = np.asarray(test.len_seq, dtype=np.int64)
    history_bucket = np.searchsorted(np.asarray(HISTORY_EDGES), history, side="right") - 1
    labels = [f"{lo}-{hi - 1}" if hi - 1 > lo else str(lo) for lo, hi in zip(HISTORY_EDGES, HISTORY_EDGES[1:])]
    labels.append(f"{HISTORY_EDGES[-1]}+")
    report["by_history"] = {
        "rule": f"len_seq buckets {', '.join(labels)} (empty buckets left out); len_seq is capped at the "
                f"window L={dataset.max_len}, so the bucket holding L also holds longer histories",
        "edges": list(HISTORY_EDGES),
        "buckets": _by_bucket(np.maximum(history_bucket, 0), labels, scores, keep_empty=False),
    }

    report["teacher_reliability"] = None
    if teacher is not None:
        if teacher_confidence is None:
            missing["teacher_reliability"] = "no teacher confidence given (teacher_confidence() derives one from " \
                                             "the teacher's distances)"
        else:
            report["teacher_reliability"], reason, note = _reliability(
                np.asarray(teacher_confidence, dtype=np.float64).ravel(), scores["teacher"][0], bins)
            if reason:
                missing["teacher_reliability"] = reason
            if note:
                notes.append(note)

    report["beyond_accuracy"] = {
        role: _beyond_accuracy(lists[role], counts, item_bucket, num_items) for role in roles}
    notes.append("student HR/NDCG come from top-k lists: tied scores are broken by torch.topk, not counted "
                 "against the target as in the run's metrics")
    for section, reason in missing.items():
        notes.append(f"{section}: {reason}")
    report["missing"] = missing
    report["notes"] = notes
    return report


def popularity_buckets(counts: np.ndarray, shares=POPULARITY_SHARES) -> tuple[np.ndarray, np.ndarray]:
    """Each item's popularity bucket (0 head, 1 torso, 2 tail) and each bucket's share of the
    training interactions: items in descending count order (ties by id), an item goes to the first
    bucket whose threshold exceeds the share held by the items before it."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    buckets = np.full(counts.shape[0], len(shares), dtype=np.int64)
    if total > 0:
        order = np.argsort(-counts, kind="stable")
        before = (np.cumsum(counts[order]) - counts[order]) / total
        bucket = np.searchsorted(np.asarray(shares, dtype=np.float64), before, side="right")
        bucket[counts[order] == 0] = len(shares)
        buckets[order] = bucket
    share = np.bincount(buckets, weights=counts, minlength=len(shares) + 1) / (total if total > 0 else 1.0)
    return buckets, share


def _check_lists(topk: Mapping[str, np.ndarray], n: int, k: int, num_items: int) -> dict[str, np.ndarray]:
    lists = {}
    for role, ids in topk.items():
        if ids is None:
            continue
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"build_report: {role} top-k has shape {list(ids.shape)} and dtype {ids.dtype}; "
                             "expected integer item ids [rows, k]")
        if role == "teacher":
            if ids.shape[0] > n:
                raise ValueError(f"build_report: the teacher has {ids.shape[0]:,} rows but test has {n:,} instances")
            if ids.shape[1] == 0:
                raise ValueError("build_report: the teacher's lists have no columns")
        elif ids.shape[0] != n or ids.shape[1] < k:
            raise ValueError(f"build_report: {role} top-k has shape {list(ids.shape)}; expected [{n}, >= {k}] "
                             "(every test instance, at least k items)")
        else:
            ids = ids[:, :k]
        if ids.size and (ids.min() < 0 or ids.max() >= num_items):
            raise ValueError(f"build_report: {role} top-k holds ids outside 0..{num_items - 1}")
        lists[role] = ids.astype(np.int64, copy=False)
    return lists


def _list_metrics(ids: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HR and NDCG at the list's length per row: rank = position of the target (1-based)."""
    found = ids == targets[:, None]
    hit = found.any(1)
    rank = found.argmax(1) + 1
    return hit.astype(np.float64), np.where(hit, 1.0 / np.log2(rank + 1.0), 0.0)


def _hits(teacher: np.ndarray, students: dict[str, np.ndarray], targets: np.ndarray) -> dict:
    t = (teacher == targets[:, None]).any(1)
    out = {"k": int(teacher.shape[1]), "n": int(len(targets)),
           "teacher_only": {}, "student_only": {}, "both": {}, "neither": {}}
    for role, ids in students.items():
        s = (ids == targets[:, None]).any(1)
        out["teacher_only"][role] = _r(np.mean(t & ~s))
        out["student_only"][role] = _r(np.mean(~t & s))
        out["both"][role] = _r(np.mean(t & s))
        out["neither"][role] = _r(np.mean(~t & ~s))
    return out


def _overlap(teacher: np.ndarray, students: dict[str, np.ndarray]) -> dict:
    """Mean |student top-k ∩ teacher top-k| / k; lists hold distinct items."""
    k = teacher.shape[1]
    out = {"k": int(k), "n": int(teacher.shape[0])}
    for role, ids in students.items():
        shared = (ids[:, :, None] == teacher[:, None, :]).any(2).sum(1)
        out[role] = _r(shared.mean() / k)
    return out


def _by_bucket(bucket: np.ndarray, labels: list[str], scores: dict, keep_empty: bool,
               extra: list[dict] | None = None) -> list[dict]:
    size = len(labels)
    n = np.bincount(bucket, minlength=size)
    per_role = {}
    for role, (hr, ndcg) in scores.items():
        b = bucket[:len(hr)]
        count = np.bincount(b, minlength=size)
        safe = np.maximum(count, 1)
        per_role[role] = (count, np.bincount(b, weights=hr, minlength=size) / safe,
                          np.bincount(b, weights=ndcg, minlength=size) / safe)
    out = []
    for i, label in enumerate(labels):  # a handful of buckets
        if not keep_empty and n[i] == 0:
            continue
        row = {"bucket": label, "n": int(n[i])}
        row.update((extra or [{}] * size)[i])
        row["roles"] = {role: {"n": int(c[i]), "hr": _r(h[i]) if c[i] else None, "ndcg": _r(g[i]) if c[i] else None}
                        for role, (c, h, g) in per_role.items()}
        base, dist = per_role.get("baseline"), per_role.get("distilled")
        # relative gain of the unrounded bucket means; students cover every row, so both have n[i] rows
        row["gain_pct"] = ({m: _gain(dist[j][i], base[j][i]) if n[i] else None for m, j in (("hr", 1), ("ndcg", 2))}
                           if base and dist else None)
        out.append(row)
    return out


def _reliability(confidence: np.ndarray, teacher_hit: np.ndarray, bins: int):
    """(section, reason, note): teacher HR per equal-count confidence bin, low to high."""
    rows = min(len(confidence), len(teacher_hit))
    note = None
    if len(confidence) != len(teacher_hit):
        note = (f"teacher confidence has {len(confidence):,} values for {len(teacher_hit):,} teacher rows: "
                f"the reliability curve uses the first {rows:,}")
    confidence, hit = confidence[:rows], teacher_hit[:rows]
    finite = np.isfinite(confidence)
    if not finite.all():
        note = ((note + "; ") if note else "") + f"{int((~finite).sum()):,} non-finite confidences left out"
        confidence, hit = confidence[finite], hit[finite]
    if len(confidence) == 0:
        return None, "no teacher row with a confidence", note
    bins = max(1, min(int(bins), len(confidence)))
    order = np.argsort(confidence, kind="stable")
    # equal counts: bin b holds sorted positions [b*n/bins, (b+1)*n/bins); ties may straddle bins
    edges = (np.arange(bins + 1) * len(order)) // bins
    label = np.searchsorted(edges[1:], np.arange(len(order)), side="right")
    size = np.bincount(label, minlength=bins)
    conf, h = confidence[order], hit[order]
    mean_conf = np.bincount(label, weights=conf, minlength=bins) / size
    hr = np.bincount(label, weights=h, minlength=bins) / size
    low, high = conf[edges[:-1]], conf[edges[1:] - 1]
    spearman = _spearman(confidence, hit)
    return {
        "bins": [{"bin": b + 1, "n": int(size[b]), "confidence_min": _r(low[b]), "confidence_max": _r(high[b]),
                  "confidence": _r(mean_conf[b]), "hr": _r(hr[b])} for b in range(bins)],
        "n": int(len(confidence)), "hr": _r(hit.mean()), "spearman": spearman,
        "rule": f"teacher rows sorted by confidence, {bins} equal-count bins (low to high); HR@teacher_k per bin",
    }, None, note


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    rx, ry = _average_ranks(x), _average_ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return _r(np.corrcoef(rx, ry)[0, 1])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    first = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((starts + ends - 1) / 2.0)[group]
    return ranks


def _beyond_accuracy(ids: np.ndarray, counts: np.ndarray, item_bucket: np.ndarray, num_items: int) -> dict:
    flat = ids.ravel()
    return {
        "k": int(ids.shape[1]), "n": int(ids.shape[0]),
        "coverage": _r(np.unique(flat).size / num_items) if num_items else None,
        "arp": _r(counts[flat].mean()) if flat.size else None,
        "tail_share": _r((item_bucket[flat] == len(POPULARITY_SHARES)).mean()) if flat.size else None,
    }


def _gain(new, old):
    if new is None or old is None or old == 0:
        return None
    return _r(100.0 * (new / old - 1.0))


def _r(value) -> float | None:
    value = float(value)
    return round(value, DIGITS) if math.isfinite(value) else None
