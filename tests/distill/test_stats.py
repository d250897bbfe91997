"""Seed intervals and paired tests against hand calculations and naive re-implementations."""

import itertools
import math

import numpy as np
import pytest

import distill.stats
from distill.errors import ConfigError
from distill.stats import paired_comparison, t_interval

# Eight users, every difference non-zero and of a distinct size: |d| ranks 1..8 without ties.
CANDIDATE = np.array([0.50, 0.30, 0.90, 0.10, 0.45, 0.70, 0.20, 0.60])
REFERENCE = np.array([0.10, 0.35, 0.20, 0.00, 0.25, 0.40, 0.32, 0.15])


def enumerated_wilcoxon_p(c, r):
    """Two-sided signed-rank p-value by enumerating all 2^n sign flips of the non-zero differences."""
    d = [a - b for a, b in zip(c, r) if a != b]
    order = sorted(range(len(d)), key=lambda i: abs(d[i]))
    ranks = [0.0] * len(d)
    i = 0
    while i < len(d):   # average ranks over ties of |d|
        j = i
        while j + 1 < len(d) and math.isclose(abs(d[order[j + 1]]), abs(d[order[i]])):
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2 + 1
        i = j + 1
    mu = sum(ranks) / 2
    observed = abs(sum(rk for rk, x in zip(ranks, d) if x > 0) - mu)
    extreme = sum(abs(sum(rk for rk, s in zip(ranks, signs) if s) - mu) >= observed - 1e-12
                  for signs in itertools.product((0, 1), repeat=len(d)))
    return extreme / 2 ** len(d)


def naive_bootstrap_ci(c, r, resamples, seed):
    """One resample at a time, one user at a time, the percentiles interpolated by hand."""
    rng = np.random.default_rng(seed)
    n = len(c)
    gains = []
    for _ in range(resamples):
        u = rng.random(n)
        picked = [min(int(x * n), n - 1) for x in u]
        c_mean = sum(c[i] for i in picked) / n
        r_mean = sum(r[i] for i in picked) / n
        if r_mean != 0:
            gains.append(100 * (c_mean / r_mean - 1))
    gains.sort()

    def percentile(q):
        pos = q / 100 * (len(gains) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(gains) - 1)
        return gains[lo] + (gains[hi] - gains[lo]) * (pos - lo)

    return [percentile(2.5), percentile(97.5)]


def test_t_interval_of_one_two_three_is_two_plus_minus_t_times_one_over_root_three():
    result = t_interval([1.0, 2.0, 3.0])
    p = 0.975
    t = (2 * p - 1) / math.sqrt(2 * p * (1 - p))   # the t quantile at 2 degrees of freedom, in closed form
    assert t == pytest.approx(4.302653, abs=1e-6)
    half = t * 1.0 / math.sqrt(3)
    assert result["mean"] == 2.0 and result["std"] == 1.0 and result["n"] == 3
    assert result["ci95"] == pytest.approx([2 - half, 2 + half], rel=1e-12)


def test_t_interval_of_one_seed_has_no_width():
    assert t_interval([0.25]) == {"mean": 0.25, "std": 0.0, "ci95": [0.25, 0.25], "n": 1}


def test_t_interval_names_its_level():
    assert "ci90" in t_interval([1.0, 2.0], confidence=0.9)


def test_gain_is_the_relative_difference_of_the_means():
    result = paired_comparison(CANDIDATE, REFERENCE, resamples=10)
    assert result["gain_pct"] == pytest.approx(100 * (CANDIDATE.mean() / REFERENCE.mean() - 1), rel=1e-12)
    assert (result["metric"], result["split"], result["n_users"], result["bootstrap"]) == ("ndcg@20", "test", 8, 10)
    assert result["test"] == "wilcoxon signed-rank"


def test_p_value_matches_the_enumerated_exact_distribution():
    # the two negative differences have |d| ranks 1 and 3: T- = 4. Sign flips with T- <= 4 ({}, {1}, {2},
    # {3}, {4}, {1,2}, {1,3}) and, mirrored, T+ <= 4: 14 of 256
    assert enumerated_wilcoxon_p(CANDIDATE, REFERENCE) == 14 / 256
    assert paired_comparison(CANDIDATE, REFERENCE, resamples=10)["p_value"] == pytest.approx(14 / 256, rel=1e-12)


def test_p_value_leaves_out_users_scored_equally_and_handles_tied_differences():
    c = np.array([1.0, 0.0, 0.5, 0.5, 0.0, 1.0, 0.3, 0.0, 0.2])
    r = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.5, 0.2])
    expected = enumerated_wilcoxon_p(c, r)
    assert paired_comparison(c, r, resamples=10)["p_value"] == pytest.approx(expected, rel=1e-9)


def test_p_value_is_one_when_the_models_score_every_user_the_same():
    assert paired_comparison(CANDIDATE, CANDIDATE, resamples=10)["p_value"] == 1.0


def test_bootstrap_interval_matches_a_naive_loop_under_the_same_seed():
    result = paired_comparison(CANDIDATE, REFERENCE, resamples=500, seed=7)
    assert result["ci95_pct"] == pytest.approx(naive_bootstrap_ci(CANDIDATE, REFERENCE, 500, 7), rel=1e-12)
    assert result["ci95_pct"][0] < result["gain_pct"] < result["ci95_pct"][1]


def test_bootstrap_interval_does_not_depend_on_the_chunk_size(monkeypatch):
    rng = np.random.default_rng(0)
    c, r = rng.random(37), rng.random(37)
    whole = paired_comparison(c, r, resamples=300, seed=3)["ci95_pct"]
    monkeypatch.setattr(distill.stats, "BOOTSTRAP_CELLS", 37 * 7)   # 43 chunks, the last one short
    assert paired_comparison(c, r, resamples=300, seed=3)["ci95_pct"] == whole


def test_a_reference_mean_of_zero_gives_no_gain_and_says_why():
    result = paired_comparison([0.5, 0.0, 0.2], [0.0, 0.0, 0.0], resamples=10)
    assert result["gain_pct"] is None and result["ci95_pct"] is None
    assert "mean ndcg@20 on test is 0" in result["reason"]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ConfigError, match="candidate has scores for 3 users, the reference for 2"):
        paired_comparison([0.1, 0.2, 0.3], [0.1, 0.2])
