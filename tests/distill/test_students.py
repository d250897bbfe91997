"""Every registered student: shapes, gradients, padding, one epoch of training, checkpoint round trip."""

import numpy as np
import pytest
import torch

from distill.config import TrainConfig
from distill.embedding import ItemEmbedding
from distill.evaluate import evaluate
from distill.students import REGISTRY, build_student
from distill.inference import TrainedStudent
from distill.rundir import save_run
from distill.train import train
from factories import chain_dataset, small_teacher


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_forward_backward_shapes_and_gradients(name):
    torch.manual_seed(0)
    model = build_student(TrainConfig(student=name), num_items=30, max_len=10, teacher_embeddings=torch.randn(30, 24))
    seq = torch.randint(0, 30, (6, 10))
    len_seq = torch.tensor([1, 2, 5, 10, 3, 7])
    seq[torch.arange(10) >= len_seq.unsqueeze(1)] = 30      # right padding with id num_items
    scores = model(seq, len_seq)
    assert scores.shape == (6, 30)
    scores.logsumexp(1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    # the padding row never receives a gradient; everything else does
    assert missing == [], missing
    assert model.item_embedding.projector.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["gru4rec", "sasrec"])
def test_padding_after_the_history_does_not_change_the_scores(name):
    torch.manual_seed(0)
    model = build_student(TrainConfig(student=name), num_items=20, max_len=10).eval()
    seq = torch.tensor([[3, 4, 5] + [20] * 7])
    other = torch.tensor([[3, 4, 5] + [20] * 7])
    other[0, 5] = 7  # garbage after len_seq must be ignored by causal / recurrent students
    with torch.no_grad():
        assert torch.allclose(model(seq, torch.tensor([3])), model(other, torch.tensor([3])), atol=1e-6)


def test_item_embedding_padding_gets_no_teacher_term_and_items_are_projected_once():
    torch.manual_seed(0)
    emb = ItemEmbedding(5, 4, teacher=torch.randn(5, 8), ed_weight=0.3)
    calls = []
    emb.projector.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    seq = torch.tensor([[1, 1, 2, 5, 5], [2, 1, 5, 5, 5]])
    out = emb(seq)
    assert calls == [2]                                       # items 1 and 2, once each
    assert torch.equal(out[0, 3], emb.ids.weight[5])          # padding: id embedding only
    expected = emb.ids.weight[1] + 0.3 * emb.projector(emb.teacher[1])
    assert torch.allclose(out[0, 0], expected) and torch.allclose(out[1, 1], expected)
    with emb.frozen_table():
        assert torch.allclose(emb(seq), out, atol=1e-6)


def test_mlp_projector_trains():
    emb = ItemEmbedding(5, 4, teacher=torch.randn(5, 8), projector="mlp")
    emb(torch.tensor([[0, 1, 5]])).sum().backward()
    assert all(p.grad is not None for p in emb.projector.parameters())


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_student_trains_one_epoch_with_and_without_distillation(name, tmp_path):
    data = chain_dataset(num_items=30, users=40)
    teacher = small_teacher(data)
    for with_teacher in (False, True):
        config = TrainConfig(student=name, epochs=1, batch_size=64, candidate_k=5, lam="0.5")
        result = train(data, config, teacher if with_teacher else None)
        assert result.best_epoch == 1 and np.isfinite(result.history[0]["loss"])
        assert 0 <= result.test["ndcg@20"] <= 1 and result.distilled == with_teacher
        # the reported numbers are the returned model's on the splits
        assert result.test == evaluate(result.model, data.test, batch_size=config.eval_batch)
        assert result.val == result.history[0]["val"]


def test_checkpoint_round_trip_gives_identical_scores_without_the_teacher(tmp_path):
    data = chain_dataset(num_items=30, users=40)
    teacher = small_teacher(data)
    result = train(data, TrainConfig(student="sasrec", epochs=2, candidate_k=5), teacher)
    save_run(result, data, tmp_path / "run", teacher)
    loaded = TrainedStudent.load(tmp_path / "run")
    assert loaded.model.item_embedding.projector is None     # the teacher term is folded in
    seq, len_seq = torch.as_tensor(data.test.seq), torch.as_tensor(data.test.len_seq)
    result.model.eval()
    with torch.no_grad(), result.model.item_embedding.frozen_table():
        expected = result.model(seq, len_seq)
        assert torch.allclose(loaded.model(seq, len_seq), expected, atol=1e-5)
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"model.safetensors", "config.json", "items.json", "metrics.json"}


def test_bf16_teacher_projection_matches_fp32_closely():
    torch.manual_seed(0)
    teacher = torch.randn(40, 512)
    fp32 = ItemEmbedding(40, 16, teacher, dtype=torch.float32)
    bf16 = ItemEmbedding(40, 16, teacher, dtype=torch.bfloat16)
    bf16.load_state_dict(fp32.state_dict())
    seq = torch.randint(0, 41, (8, 10))
    a, b = fp32(seq), bf16(seq)
    assert b.dtype == torch.float32
    assert torch.allclose(a, b, atol=0.02 * a.abs().max().item())
    b.sum().backward()
    assert bf16.projector.weight.grad.dtype == torch.float32     # fp32 master weights


def test_precision_option_is_validated():
    from distill.errors import ConfigError
    with pytest.raises(ConfigError, match="distill_precision='fp8'"):
        TrainConfig(distill_precision="fp8")
