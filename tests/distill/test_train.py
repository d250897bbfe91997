"""Trainer behaviour a user relies on: determinism, early stopping, cancellation, lam=auto, config errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from distill.config import TrainConfig
from distill.errors import ConfigError, TeacherError
from distill.train import Callbacks, Cancelled, train
from factories import chain_dataset, small_teacher


def test_same_seed_same_result_different_seed_differs():
    data = chain_dataset()
    config = TrainConfig(student="sasrec", epochs=3)
    a, b = train(data, config), train(data, config)
    assert a.val == b.val and a.test == b.test
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    c = train(data, config.replace(seed=1))
    assert [r["loss"] for r in c.history] != [r["loss"] for r in a.history]


def test_learns_the_chain_and_restores_the_best_epoch():
    data = chain_dataset(follow=0.9)
    records = []
    result = train(data, TrainConfig(student="gru4rec", epochs=25, patience=3, lr=5e-3),
                   callbacks=Callbacks(on_epoch=records.append))
    assert result.val["hr@1"] > 0.5                      # the chain is learnt (chance is 1/40)
    best = max(r["val"]["ndcg@20"] for r in records)
    assert result.val["ndcg@20"] == best
    assert records[result.best_epoch - 1]["val"]["ndcg@20"] == best
    # early stopping: at most `patience` epochs after the best one
    assert len(records) <= result.best_epoch + 3
    assert len(records) == min(25, result.best_epoch + 3)  # stopped exactly `patience` epochs after the best


def test_cancellation_is_checked_every_batch():
    data = chain_dataset()
    calls = []

    def should_cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        train(data, TrainConfig(epochs=5, batch_size=32), callbacks=Callbacks(should_cancel=should_cancel))
    assert len(calls) == 3


def test_progress_reaches_one_and_is_monotonic():
    seen = []
    train(chain_dataset(), TrainConfig(epochs=2), callbacks=Callbacks(on_progress=seen.append))
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_lam_auto_reports_every_candidate_and_the_choice():
    data = chain_dataset(num_items=30, users=40)
    result = train(data, TrainConfig(epochs=2, lam="auto", candidate_k=5), small_teacher(data))
    choice = result.lam_auto
    assert choice["grid"] == [0.0, 0.1, 0.3, 0.5, 0.7, 1.0]
    assert set(choice["val_ndcg@20"]) == {"0.0", "0.1", "0.3", "0.5", "0.7", "1.0"}
    assert choice["chosen"] == result.lam
    assert result.val["ndcg@20"] == max(choice["val_ndcg@20"].values())
    assert result.val["ndcg@20"] >= choice["baseline_val"]
    assert choice["baseline_val"] == choice["val_ndcg@20"]["0.0"]  # lambda_d = 0 is the baseline student


def test_lam_auto_without_teacher_is_refused():
    with pytest.raises(ConfigError, match="needs a teacher"):
        train(chain_dataset(), TrainConfig(lam="auto"))


def test_candidate_k_larger_than_the_teachers_list_is_refused():
    data = chain_dataset(num_items=30, users=40)
    with pytest.raises(TeacherError, match="candidate_k=10 but the teacher kept only top-5"):
        train(data, TrainConfig(epochs=1), small_teacher(data, k=5))


@pytest.mark.parametrize("options,message", [
    ({"epoch": "3"}, "did you mean 'epochs'"),
    ({"lam": "lots"}, "lam='lots'"),
    ({"student": "bert4rec"}, "student='bert4rec': expected one of gru4rec, sasrec, dros, caser"),
    ({"dropout": "1.5"}, "dropout=1.5"),
    ({"use_position": "maybe"}, "use_position='maybe'"),
    ({"confidence": "llm"}, "confidence='llm'"),
])
def test_bad_options_name_the_field(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TrainConfig.from_options(options)


def test_dros_defaults_alpha_to_one_and_sasrec_to_zero():
    assert TrainConfig(student="dros").dro_alpha == 1.0
    assert TrainConfig(student="sasrec").dro_alpha == 0.0
    assert TrainConfig.from_options({"student": "dros", "alpha": "0.5"}).dro_alpha == 0.5


def test_cli_reports_a_bad_option_without_a_traceback(tmp_path):
    data = chain_dataset()
    data.save(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "distill", "train", "--data", str(tmp_path), "--student",
                           "sasrec", "--set", "epochz=2", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown option 'epochz'; did you mean 'epochs'?" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_cli_train_and_recommend(tmp_path):
    data = chain_dataset(follow=0.95)
    data.save(tmp_path)
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "distill", "train", "--data", str(tmp_path), "--student", "gru4rec",
                           "--epochs", "15", "--set", "lr=0.005", "--out", str(run)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"val", "test", "best_epoch", "protocol", "config"} <= set(metrics)
    assert metrics["protocol"]["selection"] == "val ndcg@20" and metrics["config"]["student"] == "gru4rec"
    proc = subprocess.run([sys.executable, "-m", "distill", "recommend", "--run", str(run), "--history", "3,4,5",
                           "--k", "3"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["items"][0] == "6" and len(out["items"]) == 3     # the chain continues 3, 4, 5 -> 6
    assert not {"3", "4", "5"} & set(out["items"])
    proc = subprocess.run([sys.executable, "-m", "distill", "recommend", "--run", str(run), "--history", "3,zz"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "'zz'" in proc.stderr and "not in this run's catalogue" in proc.stderr


def test_distilled_dros_is_deterministic_too():
    data = chain_dataset(num_items=30, users=40)
    teacher = small_teacher(data)
    config = TrainConfig(student="dros", epochs=2, candidate_k=5)
    a, b = train(data, config, teacher), train(data, config, teacher)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history] and a.test == b.test


def test_paper_confidence_uses_the_teachers_target_distances():
    data = chain_dataset(num_items=30, users=40)
    teacher = small_teacher(data)
    with pytest.raises(ConfigError, match="confidence=paper needs the teacher's distance"):
        train(data, TrainConfig(epochs=1, candidate_k=5, confidence="paper"), teacher)
    rng = np.random.default_rng(0)
    teacher.target_distances = {s: rng.random(len(data.split(s))).astype(np.float32) for s in ("train", "val", "test")}
    paper = train(data, TrainConfig(epochs=1, candidate_k=5, confidence="paper"), teacher)
    candidate = train(data, TrainConfig(epochs=1, candidate_k=5), teacher)
    assert np.isfinite(paper.history[0]["loss"]) and paper.history[0]["loss"] != candidate.history[0]["loss"]
