"""Evidence a reader can weigh: t intervals over repeated seeds, paired tests over users.

A seed's metric is one draw of the training noise, so `t_interval` summarises the seeds of one
configuration (Student's t, ddof=1). Two models ranked on the same test instances are compared
pair by pair (`paired_comparison`): the relative gain of their means, a paired bootstrap interval
of that gain (users resampled with replacement, the same draw for both models) and the Wilcoxon
signed-rank test's p-value.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from distill.errors import ConfigError

# The bootstrap resamples users in chunks of about this many (resample, user) cells, so memory
# stays bounded on large test sets. One uniform per cell, drawn row by row, fixes the index
# stream: the chunk size does not change the result.
BOOTSTRAP_CELLS = 1 << 22

# Users on whom both models score the same (mostly: both miss the target) say nothing about which
# is better; "wilcox" leaves them out of the ranking, the textbook signed-rank test.
WILCOXON_ZERO_METHOD = "wilcox"
WILCOXON_TEST = "wilcoxon signed-rank"


def t_interval(values, confidence: float = 0.95) -> dict:
    """Mean, sample std (ddof=1) and the t interval of the mean over `values` (one per seed).
    The interval's key names its level: "ci95" at the default. One value: std 0.0, interval [mean, mean]."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ConfigError("t_interval needs at least one value (one per seed)")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence={confidence}: must be between 0 and 1, e.g. 0.95")
    n, mean = values.size, float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / np.sqrt(n) if n > 1 else 0.0
    return {"mean": mean, "std": std, _ci_key(confidence): [mean - half, mean + half], "n": int(n)}


def paired_comparison(candidate, reference, *, metric: str = "ndcg@20", split: str = "test",
                      resamples: int = 10000, seed: int = 0) -> dict:
    """Compare two models' per-user scores on the same users (same order).

    gain_pct = 100 * (mean(candidate) / mean(reference) - 1); ci95_pct is the 2.5th and 97.5th
    percentile of that gain over `resamples` paired bootstrap resamples drawn under `seed`
    (resamples whose reference mean is 0 have no relative gain and are left out); p_value is the
    two-sided Wilcoxon signed-rank test (zero differences dropped; exact or by enumerating the
    sign flips for small samples, the normal approximation above 50 users), 1.0 when every
    difference is zero. A reference mean of 0 gives gain_pct and ci95_pct None and a `reason`.
    """
    c = np.asarray(candidate, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    if c.shape != r.shape:
        raise ConfigError(f"paired comparison of {metric} on {split}: the candidate has scores for {c.size} users, "
                          f"the reference for {r.size}; both must score the same users in the same order")
    if c.size == 0:
        raise ConfigError(f"paired comparison of {metric} on {split}: no users to compare")
    if resamples < 1:
        raise ConfigError(f"resamples={resamples}: must be at least 1")
    result = {"metric": metric, "split": split, "gain_pct": None, "ci95_pct": None,
              "p_value": _wilcoxon_p(c, r), "test": WILCOXON_TEST, "zero_method": WILCOXON_ZERO_METHOD,
              "n_users": int(c.size), "bootstrap": int(resamples), "seed": int(seed)}
    reference_mean = r.mean()
    if reference_mean == 0:
        result["reason"] = f"the reference's mean {metric} on {split} is 0: a relative gain is undefined"
        return result
    gains = _bootstrap_gains(c, r, resamples, seed)
    result["gain_pct"] = float(100 * (c.mean() / reference_mean - 1))
    if gains.size:
        result["ci95_pct"] = [float(q) for q in np.percentile(gains, [2.5, 97.5])]
    return result


def bootstrap_indices(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """`rows` resamples of n indices in [0, n) with replacement: one uniform per cell, so drawing
    the rows in one call or in several gives the same indices."""
    return np.minimum((rng.random((rows, n)) * n).astype(np.int64), n - 1)


def _bootstrap_gains(c: np.ndarray, r: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The relative gain in percent of each paired resample whose reference mean is not 0."""
    rng = np.random.default_rng(seed)
    n = c.size
    chunk = max(1, BOOTSTRAP_CELLS // n)
    gains = []
    for start in range(0, resamples, chunk):
        idx = bootstrap_indices(rng, min(chunk, resamples - start), n)
        c_mean, r_mean = c[idx].mean(1), r[idx].mean(1)
        defined = r_mean != 0
        gains.append(100 * (c_mean[defined] / r_mean[defined] - 1))
    return np.concatenate(gains)


def _wilcoxon_p(c: np.ndarray, r: np.ndarray) -> float:
    if not np.any(c != r):
        return 1.0
    return float(stats.wilcoxon(c, r, zero_method=WILCOXON_ZERO_METHOD, alternative="two-sided",
                                method="auto").pvalue)


def _ci_key(confidence: float) -> str:
    return f"ci{round(confidence * 100, 6):g}"
