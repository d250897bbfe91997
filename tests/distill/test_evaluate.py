"""HR/NDCG/MRR with hand-computed values, full ranking with ties, the teacher's and popularity's metrics."""

import math

import numpy as np
import pytest
import torch

from distill.evaluate import (evaluate, metrics_from_ranks, most_popular_metrics, target_ranks,
                              teacher_metrics)
from factories import chain_dataset


def test_metrics_from_ranks_hand_computed():
    m = metrics_from_ranks(np.array([1, 3, 0, 25]), cutoffs=(1, 5, 50))   # 0 = not ranked
    assert m["hr@1"] == 0.25 and m["ndcg@1"] == 0.25 and m["mrr@1"] == 0.25
    assert m["hr@5"] == 0.5
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(4)) / 4)         # 0.375
    assert m["mrr@5"] == pytest.approx((1 + 1 / 3) / 4)
    assert m["hr@50"] == 0.75
    assert m["ndcg@50"] == pytest.approx((1 + 0.5 + 1 / math.log2(26)) / 4)
    assert m["mrr@50"] == pytest.approx((1 + 1 / 3 + 1 / 25) / 4)


def test_target_rank_counts_ties_against_the_target():
    scores = torch.tensor([[1.0, 1.0, 0.0], [0.1, 0.9, 0.5], [3.0, 3.0, 3.0]])
    assert target_ranks(scores, torch.tensor([1, 1, 0])).tolist() == [2, 1, 3]


def test_teacher_metrics_from_top_k_lists():
    ids = np.array([[4, 2, 9], [1, 0, 3], [7, 8, 6]])
    m = teacher_metrics(ids, np.array([2, 1, 5]), cutoffs=(1, 5, 10))
    assert set(m) == {f"{n}@{k}" for n in ("hr", "ndcg", "mrr") for k in (1,)}  # K=3: only @1 computable
    assert m["hr@1"] == pytest.approx(1 / 3)
    ids = np.tile(np.arange(10), (2, 1))
    m = teacher_metrics(ids, np.array([1, 20]))
    assert m["hr@5"] == 0.5 and m["ndcg@5"] == pytest.approx(0.5 / math.log2(3)) and "hr@20" not in m


class Oracle(torch.nn.Module):
    """Scores the true next item of a chain dataset highest: item (last + 1) mod N."""

    def __init__(self, num_items):
        super().__init__()
        self.num_items = num_items
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, seq, len_seq):
        last = seq.gather(1, (len_seq - 1).unsqueeze(1)).squeeze(1)
        scores = torch.zeros(seq.shape[0], self.num_items)
        scores[torch.arange(seq.shape[0]), (last + 1) % self.num_items] = 1.0
        return scores


def test_evaluate_full_ranking_of_a_known_model_in_batches():
    data = chain_dataset(follow=0.8, seed=3)
    split = data.test
    expected_hits = float(np.mean(split.next == (split.seq[np.arange(len(split)), split.len_seq - 1] + 1) % 40))
    oracle = Oracle(data.num_items)
    m = evaluate(oracle, split, batch_size=7)
    # hits rank 1; misses tie with the other 38 zeros -> rank 39 (pessimistic), outside @20
    assert m["hr@1"] == pytest.approx(expected_hits)
    assert m["hr@20"] == pytest.approx(expected_hits)
    assert m["ndcg@20"] == pytest.approx(expected_hits)
    assert m == evaluate(oracle, split, batch_size=1000)
    assert oracle.training                                   # training mode restored afterwards


def test_most_popular_baseline():
    data = chain_dataset()
    m = most_popular_metrics(data.train, data.test, data.num_items)
    assert 0 <= m["hr@20"] <= 1
    counts = np.bincount(data.train.next, minlength=data.num_items)
    top1 = np.argsort(-counts, kind="stable")[0]
    if (counts == counts[top1]).sum() == 1:
        assert m["hr@1"] == pytest.approx(np.mean(data.test.next == top1))
