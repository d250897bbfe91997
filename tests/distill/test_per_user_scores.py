"""Per-instance and per-user scores: the same ranking as `evaluate`, so their means are its numbers."""

import numpy as np
import pytest
import torch

from distill.config import TrainConfig
from distill.evaluate import (evaluate, per_user_mean, per_user_scores, teacher_metrics,
                              teacher_per_user_scores)
from distill.students import build_student
from factories import chain_dataset


def test_the_mean_of_per_user_scores_is_evaluate():
    data = chain_dataset(num_items=30, users=40)
    torch.manual_seed(0)
    model = build_student(TrainConfig(student="gru4rec", hidden=16), data.num_items, data.max_len)
    scores = per_user_scores(model, data.test, cutoffs=(5, 20), batch_size=7)   # several batches
    metrics = evaluate(model, data.test, cutoffs=(5, 20), batch_size=256)
    assert set(scores) == set(metrics)
    for name, values in scores.items():
        assert values.shape == (len(data.test),)
        assert values.mean() == pytest.approx(metrics[name], rel=1e-12, abs=1e-15)


def test_per_user_mean_averages_each_users_instances():
    users, means = per_user_mean(np.array([1.0, 0.0, 0.5, 0.25, 0.0]), np.array([7, 3, 7, 3, 9]))
    assert users.tolist() == [3, 7, 9]
    assert means.tolist() == [0.125, 0.75, 0.0]


def test_teacher_per_user_scores_average_to_teacher_metrics():
    ids = np.tile(np.arange(10), (4, 1))
    targets = np.array([0, 3, 12, 9])
    scores = teacher_per_user_scores(ids, targets, cutoffs=(5, 10, 20))
    assert "ndcg@20" not in scores   # K = 10: @20 cannot be computed from the lists
    assert scores["hr@10"].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert scores["ndcg@5"] == pytest.approx([1.0, 1 / np.log2(5), 0.0, 0.0])
    metrics = teacher_metrics(ids, targets, cutoffs=(5, 10, 20))
    assert {name: values.mean() for name, values in scores.items()} == pytest.approx(metrics)
