"""A teacher budget (docs/method.md §2.6): the teacher ranks only part of the training instances.

Ranking distillation then applies to those instances only (`distill.objective`: their weights
renormalised per batch, so the loss scale does not depend on the budget), embedding distillation to
every instance. Val/test are ranked in full for the teacher's own metrics, or (BIGRec's
`eval_sample`) on a recorded seeded sample of each (`eval_rows`): the teacher's metrics then come with
their n, and comparisons with the teacher use the sampled rows only.

A budget is a count (`500`: that many training instances) or a fraction (`0.1`: that share of them,
rounded up), chosen by a recorded rule:

- `random`: a seeded random order of the training instances;
- `recent`: each user's latest instance first, then each user's second latest, ...; ties (the same
  position from the end) in seeded random order;
- `uncertain`: the instances where a quickly trained plain student is least sure first (the lowest
  margin between its best and second-best item score; a student of `UNCERTAIN_EPOCHS` epochs,
  trained with `budget_seed`); ties in seeded random order.

Every rule is an *order* of all training instances and a budget of n takes its first n: a smaller
budget is a subset of a larger one with the same rule and seed. That is what lets a study sweep the
budget with one teacher computation (`restrict`): the largest budget is computed, the smaller ones
are its prefixes.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from distill.errors import ConfigError, TeacherError, raise_if_cancelled

BUDGET_RULES = ("random", "recent", "uncertain")
DEFAULT_RULE = "random"
UNCERTAIN_EPOCHS = 3
UNCERTAIN_HIDDEN = 32


def check_budget(value) -> None:
    """Raise ConfigError unless `value` is a count (an integer >= 1) or a fraction in (0, 1]."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"teacher option budget must be a count of training instances (an integer >= 1) or a "
                          f"fraction of them in (0, 1], got {type(value).__name__}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"teacher option budget={value} ranks no instance: give a count >= 1 or a fraction in "
                              "(0, 1]")
    elif not (math.isfinite(value) and 0 < value <= 1):
        raise ConfigError(f"teacher option budget={value!r} is not a fraction in (0, 1]; give a fraction of the "
                          "training instances (0.1 = 10%) or a whole count (500)")


def parse_budget_text(text: str):
    """`--budget 500` -> 500 (a count), `--budget 0.1` -> 0.1 (a fraction); ConfigError otherwise."""
    text = text.strip()
    try:
        value = int(text) if text.isdigit() else float(text)
    except ValueError:
        raise ConfigError(f"--budget {text!r}: give a count of training instances (500) or a fraction of them "
                          "(0.1)") from None
    check_budget(value)
    return value


def budget_count(budget, instances: int) -> int:
    """The number of training instances a budget ranks (a fraction rounded up, at least 1)."""
    check_budget(budget)
    if isinstance(budget, int):
        if budget > instances:
            raise ConfigError(f"teacher option budget={budget:,} is above the {instances:,} training instances; give "
                              f"at most {instances:,}, or a fraction such as 0.5")
        return budget
    return max(1, min(instances, math.ceil(budget * instances - 1e-9)))


def budget_order(dataset, rule: str = DEFAULT_RULE, seed: int = 0, *,
                 should_cancel: Callable[[], bool] | None = None, device: str = "cpu") -> np.ndarray:
    """Every training row of `dataset`, in the order the rule spends the budget (int64 [N_train])."""
    if rule not in BUDGET_RULES:
        raise ConfigError(f"teacher option budget_rule={rule!r} is not one of {', '.join(BUDGET_RULES)}")
    train = dataset.train
    n = len(train)
    tiebreak = np.random.default_rng(seed).permutation(n)
    if rule == "random":
        return tiebreak.astype(np.int64)
    if rule == "recent":
        key = _position_from_latest(train.user, train.time)
    else:
        key = _student_margins(dataset, seed, should_cancel, device)    # small margin = unsure = first
    # lexsort: the last key is the primary one; the random permutation breaks ties.
    rank_of_row = np.empty(n, dtype=np.int64)
    rank_of_row[tiebreak] = np.arange(n)
    return np.lexsort((rank_of_row, key)).astype(np.int64)


def _position_from_latest(users: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each row, how many of its user's rows come after it in time (0 = the user's latest)."""
    n = len(users)
    rows = np.arange(n)
    order = np.lexsort((-rows, -times, users))               # by user, latest first (later row first on ties)
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n) - group_start
    return position


def _student_margins(dataset, seed: int, should_cancel, device: str) -> np.ndarray:
    """Per training row, the score margin between a quick plain student's best and second-best item."""
    import torch

    from distill.config import TrainConfig
    from distill.train import Callbacks, train
    config = TrainConfig(student="sasrec", epochs=UNCERTAIN_EPOCHS, patience=UNCERTAIN_EPOCHS, hidden=UNCERTAIN_HIDDEN,
                         seed=seed, device=device)
    result = train(dataset, config, None, callbacks=Callbacks(should_cancel=should_cancel) if should_cancel else None)
    model = result.model.eval()
    train_split = dataset.train
    margins = np.empty(len(train_split), dtype=np.float64)
    batch = 1024
    with torch.no_grad():
        for start in range(0, len(train_split), batch):
            raise_if_cancelled(should_cancel)
            seq = torch.as_tensor(train_split.seq[start:start + batch], device=next(model.parameters()).device)
            lengths = torch.as_tensor(train_split.len_seq[start:start + batch], device=seq.device)
            top = model(seq, lengths).float().topk(2, dim=1).values
            margins[start:start + batch] = (top[:, 0] - top[:, 1]).cpu().numpy()
    return margins


def select(dataset, budget, rule: str = DEFAULT_RULE, seed: int = 0, **kwargs) -> tuple[np.ndarray, int, dict]:
    """(the rule's order of every training row, how many of them the budget ranks, the record kept
    in teacher.json as "budget"). The ranked rows are `order[:count]`."""
    n = len(dataset.train)
    count = budget_count(budget, n)
    order = budget_order(dataset, rule, seed, **kwargs)
    return order, count, {"budget": budget, "rule": rule, "seed": seed, "ranked": int(count), "instances": int(n)}


def eval_rows(instances: int, sample: int | None, seed: int = 0) -> np.ndarray | None:
    """The val/test rows an `eval_sample` ranks, ascending: a seeded random sample of `sample` of the
    `instances` rows (its own stream of the seed, not the budget's order); None when the sample
    covers every row (ranked in full)."""
    if sample is None or sample >= instances:
        return None
    return np.sort(np.random.default_rng([seed, 1]).permutation(instances)[:sample]).astype(np.int64)


def apply_budget(artifacts, order: np.ndarray, count: int, record: dict):
    """`artifacts` keeping the train ranks of `order[:count]` only: the other rows' ids, distances and
    target distances are zeroed, `ranked["train"]` marks the kept rows, `budget_order` keeps the
    whole order (for `restrict`) and `meta["budget"]` records the choice. Returns the same object."""
    n = len(artifacts.ids["train"])
    keep = np.zeros(n, dtype=bool)
    keep[order[:count]] = True
    artifacts.ids["train"] = np.where(keep[:, None], artifacts.ids["train"], 0).astype(np.int64)
    artifacts.distances["train"] = np.where(keep[:, None], artifacts.distances["train"], 0).astype(np.float32)
    if "train" in artifacts.target_distances:
        artifacts.target_distances["train"] = np.where(keep, artifacts.target_distances["train"], 0).astype(np.float32)
    artifacts.ranked["train"] = keep.astype(np.uint8)
    artifacts.budget_order = np.asarray(order, dtype=np.int64)
    artifacts.meta["budget"] = record
    return artifacts


def restrict(artifacts, budget):
    """Budgeted artifacts cut to a smaller budget of the same rule and seed (the prefix of the same
    order, kept in the artifacts): a budget curve from one teacher computation. TeacherError when
    `budget` asks for more instances than these artifacts ranked. Returns the same object."""
    record = artifacts.meta.get("budget")
    if record is None or artifacts.budget_order is None:
        raise TeacherError("these teacher artifacts have no budget; rank with a budget first (teacher option budget)")
    count = budget_count(budget, record["instances"])
    if count > record["ranked"]:
        raise TeacherError(f"a budget of {count:,} instances is above the {record['ranked']:,} this teacher ranked; "
                           "compute the teacher at the largest budget")
    return apply_budget(artifacts, artifacts.budget_order, count, {**record, "budget": budget, "ranked": int(count)})


def with_budget(artifacts, dataset, budget, rule: str = DEFAULT_RULE, seed: int = 0, should_cancel=None):
    """`artifacts` (ranked on every training instance) cut to `budget` chosen by `rule` (nothing to do
    without a budget). The cheap teachers rank everything and keep the budget's rows, which gives the
    same rows as ranking only those; BIGRec generates for the budget's rows only."""
    if budget is None:
        return artifacts
    order, count, record = select(dataset, budget, rule, seed, should_cancel=should_cancel)
    return apply_budget(artifacts, order, count, record)
