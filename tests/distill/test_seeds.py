"""Repeated seeds: one student per seed, their mean and t interval, paired comparisons over users."""

import json

import numpy as np
import pytest

import distill.train
from distill.config import TrainConfig
from distill.errors import ConfigError
from distill.evaluate import per_user_mean, per_user_scores
from distill.inference import TrainedStudent
from distill.recipe import (check_seeds, compare_students, ensure_teacher, seed_dir, seed_summary,
                            student_config, train_role, train_seeds)
from distill.teacher.artifacts import TeacherArtifacts

from factories import chain_dataset

TINY = {"epochs": 1, "hidden": 16, "candidate_k": 5}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A dataset, a titles teacher and two seeds each of a baseline and a distilled gru4rec."""
    root = tmp_path_factory.mktemp("seeds")
    dataset = chain_dataset(num_items=30, users=40)
    teacher = ensure_teacher(dataset, {"kind": "titles", "k": 20}, root / "teacher")
    baseline = train_seeds(dataset, student_config("gru4rec", TINY, {}, distilled=False), None,
                           root / "baseline", [0, 1])
    distilled = train_seeds(dataset, student_config("gru4rec", TINY, {"lam": "0.5"}, distilled=True), teacher,
                            root / "distilled", [0, 1])
    return dataset, root, baseline, distilled


def test_each_seed_gets_its_own_run_directory_and_protocol(world):
    _, root, baseline, _ = world
    assert [m["protocol"]["seed"] for m in baseline] == [0, 1]
    for seed, metrics in zip([0, 1], baseline):
        stored = json.loads((seed_dir(root / "baseline", seed) / "metrics.json").read_text())
        assert stored["test"] == metrics["test"] and stored["config"]["seed"] == seed
    assert baseline[0]["test"] != baseline[1]["test"]


def test_the_teacher_is_loaded_once_for_all_seeds(world, tmp_path, monkeypatch):
    dataset, root, _, _ = world
    loads = []
    original = TeacherArtifacts.load
    monkeypatch.setattr(TeacherArtifacts, "load", staticmethod(lambda *a, **k: loads.append(a) or original(*a, **k)))
    train_seeds(dataset, student_config("gru4rec", TINY, {"lam": "0.5"}, distilled=True), root / "teacher",
                tmp_path / "distilled", [3, 4, 5])
    assert len(loads) == 1


def test_finished_seeds_are_not_trained_again(world, monkeypatch):
    dataset, root, baseline, _ = world

    def fails(*args, **kwargs):
        raise AssertionError("a seed was trained again")

    monkeypatch.setattr(distill.train, "train", fails)
    again = train_seeds(dataset, student_config("gru4rec", TINY, {}, distilled=False), None, root / "baseline", [0, 1])
    assert [m["test"] for m in again] == [m["test"] for m in baseline]


@pytest.mark.parametrize("seeds,fragment", [([], "0 seeds"), (list(range(21)), "21 seeds"),
                                            ([1, 1], "once"), ([-1], "whole number")])
def test_bad_seed_lists_are_refused(seeds, fragment):
    with pytest.raises(ConfigError, match=fragment):
        check_seeds(seeds)


def test_seed_summary_is_the_mean_and_t_interval_of_each_metric():
    runs = [{"val": {"ndcg@20": v}, "test": {"ndcg@20": t}, "protocol": {"seed": s}}
            for s, v, t in ((0, 0.1, 1.0), (1, 0.2, 2.0), (2, 0.3, 3.0))]
    summary = seed_summary(runs)
    assert summary["metrics"]["test"]["ndcg@20"] == 2.0
    assert summary["metrics"]["val"]["ndcg@20"] == pytest.approx(0.2)
    assert summary["uncertainty"]["test"]["ndcg@20"]["std"] == 1.0
    assert summary["uncertainty"]["test"]["ndcg@20"]["n"] == 3 and summary["seeds"] == [0, 1, 2]


def test_per_user_scores_of_a_saved_run_reproduce_its_test_metrics(world):
    dataset, root, baseline, _ = world
    model = TrainedStudent.load(seed_dir(root / "baseline", 0)).model
    assert per_user_scores(model, dataset.test)["ndcg@20"].mean() == pytest.approx(baseline[0]["test"]["ndcg@20"])


def test_compare_students_averages_seeds_per_instance_then_instances_per_user(world):
    dataset, root, _, _ = world
    distilled = [seed_dir(root / "distilled", s) for s in (0, 1)]
    baseline = [seed_dir(root / "baseline", s) for s in (0, 1)]
    result = compare_students(dataset, distilled, baseline, root / "teacher")

    def role(dirs):
        instances = np.mean([per_user_scores(TrainedStudent.load(d).model, dataset.test)["ndcg@20"] for d in dirs], 0)
        return per_user_mean(instances, dataset.test.user)[1]

    versus = result["distilled_vs_baseline"]
    assert versus["n_users"] == len(np.unique(dataset.test.user)) < len(dataset.test)   # the time split
    assert versus["gain_pct"] == pytest.approx(100 * (role(distilled).mean() / role(baseline).mean() - 1))
    assert result["distilled_vs_teacher"]["n_users"] == versus["n_users"]
    assert result["seeds"] == {"distilled": [0, 1], "baseline": [0, 1]}


def test_a_student_compared_with_itself_has_no_gain(world):
    dataset, root, _, _ = world
    runs = [seed_dir(root / "baseline", 0)]
    versus = compare_students(dataset, runs, runs)["distilled_vs_baseline"]
    assert versus["gain_pct"] == 0.0 and versus["p_value"] == 1.0 and versus["ci95_pct"] == [0.0, 0.0]


def test_runs_of_another_dataset_are_refused(world):
    _, root, _, _ = world
    runs = [seed_dir(root / "baseline", 0)]
    with pytest.raises(ConfigError, match="trained on another dataset"):
        compare_students(chain_dataset(num_items=30, users=40, seed=5), runs, runs)


def test_an_unknown_metric_is_refused(world):
    dataset, root, _, _ = world
    runs = [seed_dir(root / "baseline", 0)]
    with pytest.raises(ConfigError, match="use hr@K, ndcg@K or mrr@K"):
        compare_students(dataset, runs, runs, metric="recall@20")


@pytest.fixture(scope="module")
def auto_seeds(world):
    """lam=auto over two seeds: one lambda_d for both, chosen on the mean val NDCG@20."""
    dataset, root, _, _ = world
    config = student_config("gru4rec", TINY, {}, distilled=True)
    dirs, metrics = train_role(dataset, config, root / "teacher", root / "auto", [0, 1])
    return root / "auto", dirs, metrics


def test_lam_auto_over_seeds_keeps_the_lambda_with_the_best_mean_val(auto_seeds):
    out, _, metrics = auto_seeds
    per_lambda = {}
    for candidate in sorted(out.glob("lam-*")):
        runs = [json.loads((candidate / f"seed-{s}" / "metrics.json").read_text()) for s in (0, 1)]
        per_lambda[float(candidate.name[4:])] = np.mean([r["val"]["ndcg@20"] for r in runs])
    best = max(sorted(per_lambda), key=lambda lam: (per_lambda[lam], -lam))
    assert [m["lam"] for m in metrics] == [best, best]
    assert metrics[0]["lam_auto"]["chosen"] == best and metrics[0]["lam_auto"]["selected_on"].startswith("val")


def test_lam_auto_over_seeds_serves_the_chosen_lambdas_runs(auto_seeds):
    out, dirs, metrics = auto_seeds
    assert dirs == [seed_dir(out, 0), seed_dir(out, 1)]
    chosen = out / f"lam-{metrics[0]['lam']}"
    for seed, directory in zip((0, 1), dirs):
        assert (directory / "model.safetensors").read_bytes() == (chosen / f"seed-{seed}" / "model.safetensors").read_bytes()


def test_one_seed_keeps_the_one_run_layout(world, tmp_path):
    dataset, _, _, _ = world
    dirs, metrics = train_role(dataset, student_config("gru4rec", TINY, {}, distilled=False), None, tmp_path / "one", [3])
    assert dirs == [tmp_path / "one"] and metrics[0]["protocol"]["seed"] == 3
