"""Exact values for each distillation weight and loss (hand-computed), plus shapes and gradients."""

import math

import numpy as np
import pytest
import torch

from distill.losses import (bce_loss, candidate_weights, confidence_weights, consistency_weights,
                            dro_loss, instance_confidence, position_weights, propensity_scores,
                            ranking_distillation_loss, sample_negatives)

E = [math.exp(-1), math.exp(-2), math.exp(-3)]
SOFT = [e / sum(E) for e in E]  # 0.665241, 0.244728, 0.090031


def softplus(x):
    return math.log1p(math.exp(x))


def test_position_weights_fall_exponentially_with_rank():
    assert position_weights(3).tolist() == pytest.approx([0.665241, 0.244728, 0.090031], abs=1e-6)
    # a larger beta flattens the weights: exp(-k/2) normalised
    e2 = [math.exp(-k / 2) for k in (1, 2, 3)]
    assert position_weights(3, beta=2.0).tolist() == pytest.approx([e / sum(e2) for e in e2], abs=1e-6)


def test_confidence_weights_are_softmax_of_negative_distance_and_stable():
    w = confidence_weights(torch.tensor([[0.0, 1.0, 2.0]]))
    assert w[0].tolist() == pytest.approx(SOFT, abs=1e-6)
    # the reference code's exp(-d) underflows to 0/0 for distances of a few hundred; ours does not
    far = confidence_weights(torch.tensor([[800.0, 801.0, 802.0]]))
    assert far[0].tolist() == pytest.approx(SOFT, abs=1e-6)


def test_consistency_weight_marks_candidates_in_the_students_top_k():
    logits = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]], requires_grad=True)
    w = consistency_weights(logits, torch.tensor([[0, 5, 1]]))   # student top-3 = {0, 1, 2}
    assert w.tolist() == [[1.0, 0.0, 1.0]]
    assert not w.requires_grad


def test_combined_weights_hand_computed():
    logits = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    w = candidate_weights(torch.tensor([[0, 5, 1]]), torch.tensor([[0.0, 1.0, 2.0]]), logits)
    # 0.3 w_p + 0.5 w_c + 0.1 w_o with w_p = w_c = SOFT, w_o = [1, 0, 1]; the sum is already 1
    expected = [0.8 * SOFT[0] + 0.1, 0.8 * SOFT[1], 0.8 * SOFT[2] + 0.1]
    assert w[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert float(w.sum()) == pytest.approx(1.0)


def test_each_weight_can_be_switched_off():
    logits = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    cand, dist = torch.tensor([[0, 5, 1]]), torch.tensor([[2.0, 0.0, 1.0]])
    only_conf = candidate_weights(cand, dist, use_position=False, use_consistency=False)
    assert only_conf[0].tolist() == pytest.approx([SOFT[2], SOFT[0], SOFT[1]], abs=1e-6)
    only_consistency = candidate_weights(cand, dist, logits, use_position=False, use_confidence=False)
    assert only_consistency[0].tolist() == pytest.approx([0.5, 0.0, 0.5])
    none = candidate_weights(cand, dist, use_position=False, use_confidence=False, use_consistency=False)
    assert none[0].tolist() == pytest.approx([1 / 3] * 3)


def test_ranking_distillation_loss_hand_computed():
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0]], requires_grad=True)
    cand, neg, w = torch.tensor([[0, 3]]), torch.tensor([2]), torch.tensor([[0.75, 0.25]])
    loss = ranking_distillation_loss(logits.gather(1, cand), logits[:, 2], w)
    expected = 0.75 * (softplus(-2) + softplus(-1)) + 0.25 * (softplus(-1) + softplus(-1))
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-6)      # 0.486773
    loss.backward()
    assert logits.grad[0, 1] == 0 and logits.grad[0, 0] < 0 and logits.grad[0, 2] > 0
    # reference code's negative term: -log sigmoid(1 - y_neg)
    official = ranking_distillation_loss(logits.gather(1, cand), logits[:, 2], w, official_negative=True)
    expected = 0.75 * (softplus(-2) + softplus(-2)) + 0.25 * (softplus(-1) + softplus(-2))
    assert float(official.detach()) == pytest.approx(expected, abs=1e-6)  # 0.300440


def test_ranking_distillation_is_mean_over_instances_of_weighted_sum():
    torch.manual_seed(0)
    logits = torch.randn(5, 30)
    cand = torch.randint(30, (5, 4))
    neg = torch.randint(30, (5,))
    w = torch.softmax(torch.randn(5, 4), 1)
    loss = ranking_distillation_loss(logits.gather(1, cand), logits.gather(1, neg.unsqueeze(1)).squeeze(1), w)
    looped = sum(
        float(w[b, k]) * (softplus(-float(logits[b, cand[b, k]])) + softplus(float(logits[b, neg[b]])))
        for b in range(5) for k in range(4)) / 5
    assert float(loss) == pytest.approx(looped, rel=1e-5)


def test_bce_loss_hand_computed():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    loss = bce_loss(logits[:, 0], logits[:, 1])
    assert float(loss) == pytest.approx(0.5 * (softplus(-2) + softplus(-1)), abs=1e-6)


def test_dro_loss_hand_computed():
    logits = torch.tensor([[1.0, 0.0, 2.0]])
    ps = torch.ones(3)
    loss = dro_loss(logits, torch.tensor([[0]]), ps, beta=1.0)
    expected = math.log(math.e ** 1 + math.e ** 0 + math.e ** 4 - math.e ** 1 + math.e ** 0)
    assert float(loss) == pytest.approx(expected, abs=1e-5)      # 4.03595
    ps2 = torch.tensor([0.5, 1.0, 2.0])
    loss = dro_loss(logits, torch.tensor([[2]]), ps2, beta=2.0)
    a = [0.5 * 1 / 2, 0.0, 2.0 * 4 / 2]
    expected = math.log(sum(math.exp(x) for x in a) - math.exp(a[2]) + math.exp(2.0 * 1 / 2))
    assert float(loss) == pytest.approx(expected, abs=1e-5)


def test_dro_loss_is_finite_for_large_logits_and_per_candidate():
    logits = torch.tensor([[40.0, -35.0, 10.0, 0.5]], requires_grad=True)
    loss = dro_loss(logits, torch.tensor([[0, 1, 2]]), torch.ones(4))
    assert loss.shape == (1, 3) and torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_dro_in_ranking_distillation_instance_vs_official_weighting():
    torch.manual_seed(1)
    logits = torch.randn(4, 12)
    cand, neg = torch.randint(12, (4, 3)), torch.randint(12, (4,))
    w = torch.softmax(torch.randn(4, 3), 1)
    ps = torch.rand(12) + 0.5
    scores, neg_scores = logits.gather(1, cand), logits.gather(1, neg.unsqueeze(1)).squeeze(1)
    base = ranking_distillation_loss(scores, neg_scores, w)
    dro = dro_loss(logits, cand, ps)
    inst = ranking_distillation_loss(scores, neg_scores, w, dro=dro, alpha=0.5)
    assert float(inst) == pytest.approx(float(base + 0.5 * (w * dro).sum(1).mean()), rel=1e-5)
    official = ranking_distillation_loss(scores, neg_scores, w, dro=dro, alpha=0.5, dro_weighting="official")
    assert float(official) == pytest.approx(float(base + 0.5 * (w.mean(0) * dro.mean(0)).sum()), rel=1e-5)
    assert float(official) != pytest.approx(float(inst), rel=1e-4)


def test_propensity_scores():
    ps = propensity_scores(np.array([0, 0, 1]), 3)
    assert ps.tolist() == pytest.approx([(3 / 6) ** 0.05, (2 / 6) ** 0.05, (1 / 6) ** 0.05], rel=1e-6)


def test_instance_confidence_falls_with_distance():
    w = instance_confidence(torch.tensor([2.0, 3.0, 2.5]))
    assert w.tolist() == pytest.approx([1.0, math.exp(-1), math.exp(-0.5)], rel=1e-6)


def test_negatives_avoid_history_and_target():
    g = torch.Generator().manual_seed(0)
    seq = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]] * 500)
    target = torch.full((500,), 10)
    neg = sample_negatives(seq, target, 12, g)     # only item 11 is allowed
    assert (neg == 11).all()
    seq = torch.randint(0, 50, (2000, 10))
    target = torch.randint(0, 50, (2000,))
    neg = sample_negatives(seq, target, 50, g)
    assert not (neg.unsqueeze(1) == seq).any(1).any()
    assert not (neg == target).any()
    assert neg.unique().numel() > 40               # spread over the catalogue
    with pytest.raises(ValueError, match="cover every item"):
        sample_negatives(torch.tensor([[0, 1, 2]]), torch.tensor([3]), 4, g)


def test_consistency_needs_the_students_scores():
    with pytest.raises(ValueError, match="needs the student's scores"):
        candidate_weights(torch.tensor([[0, 1]]), torch.tensor([[0.0, 1.0]]))


def test_scores_of_chosen_items_equal_the_full_scorer():
    from distill.config import TrainConfig
    from distill.students import build_student
    torch.manual_seed(0)
    model = build_student(TrainConfig(student="sasrec"), 50, 10)
    state = torch.randn(4, 64)
    items = torch.randint(50, (4, 7))
    assert torch.allclose(model.score_items(state, items), model.scorer(state).gather(1, items), atol=1e-5)


def naive_dro(logits, positives, ps, beta):
    a = ps * logits.square() / beta
    total = torch.exp(a).sum(1, keepdim=True)
    pos = logits.gather(1, positives)
    return torch.log(total - torch.exp(a.gather(1, positives)) + torch.exp(ps[positives] * (pos - 1).square() / beta))


def test_dro_forward_and_hand_written_gradient_match_the_formula():
    torch.manual_seed(0)
    logits = torch.randn(6, 15, dtype=torch.float64, requires_grad=True)
    positives = torch.tensor([[0, 3, 3], [1, 2, 14], [5, 5, 6], [7, 0, 1], [9, 8, 2], [14, 13, 12]])
    ps = torch.rand(15, dtype=torch.float64) + 0.5
    upstream = torch.randn(6, 3, dtype=torch.float64)
    ours = dro_loss(logits, positives, ps, beta=0.7)
    (grad_ours,) = torch.autograd.grad((ours * upstream).sum(), logits)
    reference = naive_dro(logits, positives, ps, 0.7)
    (grad_ref,) = torch.autograd.grad((reference * upstream).sum(), logits)
    assert torch.allclose(ours, reference, atol=1e-10)
    assert torch.allclose(grad_ours, grad_ref, atol=1e-10)
    assert torch.autograd.gradcheck(lambda y: dro_loss(y, positives, ps, 0.7), (logits,))
