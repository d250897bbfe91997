"""HR/NDCG/MRR with hand-computed values, full ranking with ties, the teacher's and popularity's metrics."""

import math

import numpy as np
import pytest
import torch

from distill.evaluate import (evaluate, metrics_from_ranks, most_popular_metrics, target_ranks,
                              teacher_metrics, topk_overlap)
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
    assert (counts == counts[top1]).sum() == 1  # one most popular item: the hr@1 check below runs
    if (counts == counts[top1]).sum() == 1:
        assert m["hr@1"] == pytest.approx(np.mean(data.test.next == top1))
    # every cutoff, ties counted against the target: the rank is the number of items seen at least as often
    ranks = (counts[None, :] >= counts[data.test.next][:, None]).sum(1)
    for k in (1, 10, 20):
        assert m[f"hr@{k}"] == pytest.approx(np.mean(ranks <= k))
        assert m[f"ndcg@{k}"] == pytest.approx(np.mean(np.where(ranks <= k, 1 / np.log2(ranks + 1), 0)))


class Fixed(torch.nn.Module):
    """Scores items by a fixed order: item i gets -rank_of[i], the same for every history."""

    def __init__(self, order):
        super().__init__()
        self.scores = torch.zeros(len(order))
        self.scores[torch.as_tensor(order)] = -torch.arange(len(order), dtype=torch.float32)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, seq, len_seq):
        return self.scores.expand(seq.shape[0], -1)


def test_topk_overlap_is_the_share_of_the_teachers_list_the_student_also_ranks_top():
    data = chain_dataset(seed=1)
    split = data.test
    order = np.arange(data.num_items)[::-1].copy()               # student: 39, 38, 37, ...
    student = Fixed(order)
    same = np.tile(order[:5], (len(split), 1))
    assert topk_overlap(student, split, same, k=5, batch_size=3) == pytest.approx(1.0)
    half = np.tile(np.r_[order[:2], order[10:13]], (len(split), 1))  # 2 of 5 shared
    assert topk_overlap(student, split, half, k=5) == pytest.approx(0.4)
    disjoint = np.tile(order[-5:], (len(split), 1))
    assert topk_overlap(student, split, disjoint, k=5) == 0.0
    # k is capped by the teacher's list; a --limit teacher covers only its first rows.
    assert topk_overlap(student, split, same[:4, :3], k=20) == pytest.approx(1.0)
    assert student.training
