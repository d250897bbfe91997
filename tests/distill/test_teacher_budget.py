"""A teacher budget (docs/method.md §2.6): the teacher ranks only part of the training instances,
chosen by a recorded rule; smaller budgets are subsets of larger ones; the student distils rankings
on the ranked instances only, with a loss scale that does not depend on the budget."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from distill.config import TrainConfig
from distill.errors import ConfigError, TeacherError
from distill.objective import TeacherSignal
from distill.teacher import TeacherArtifacts, build_teacher
from distill.teacher.budget import budget_count, budget_order, restrict, select
from distill.teacher.registry import parse_teacher

from factories import chain_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget")
    data = chain_dataset(num_items=30, users=40)
    (root / "data").mkdir()
    data.save(root / "data")
    data.path = root / "data"
    return data


@pytest.fixture(scope="module")
def full(dataset, tmp_path_factory):
    """The titles teacher on every training instance."""
    return TeacherArtifacts.load(build_teacher("titles", dataset, tmp_path_factory.mktemp("full") / "t", k=10),
                                 dataset)


def budgeted(dataset, tmp_path, budget, rule="random", seed=0, kind="titles", **options):
    out = build_teacher(kind, dataset, tmp_path / f"{kind}-{rule}-{budget}-{seed}", k=10, budget=budget,
                        budget_rule=rule, budget_seed=seed, **options)
    return TeacherArtifacts.load(out, dataset)


@pytest.mark.parametrize("budget,expected", [(50, 50), (0.1, None), (1.0, None), (1, 1)])
def test_a_budget_is_a_count_or_a_fraction_rounded_up(dataset, budget, expected):
    n = len(dataset.train)
    assert budget_count(budget, n) == (expected if expected is not None else int(np.ceil(budget * n)))


@pytest.mark.parametrize("budget,fragment", [(0, "ranks no instance"), (-3, "ranks no instance"),
                                             (1.5, "not a fraction in (0, 1]"), (0.0, "not a fraction"),
                                             (float("nan"), "not a fraction"), (True, "got bool"),
                                             ("10%", "got str")])
def test_a_budget_outside_its_range_is_refused_at_parse(budget, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_teacher({"kind": "titles", "budget": budget})


def test_a_count_above_the_training_instances_is_refused_naming_both(dataset, tmp_path):
    n = len(dataset.train)
    with pytest.raises(ConfigError, match=f"budget={n + 1:,} is above the {n:,} training instances"):
        budgeted(dataset, tmp_path, n + 1)


def test_the_teacher_keeps_exactly_the_budgets_rows_and_ranks_them_as_in_full(dataset, full, tmp_path):
    teacher = budgeted(dataset, tmp_path, 60)
    mask = teacher.ranked_rows("train")
    assert mask.sum() == 60 and teacher.meta["budget"] == {"budget": 60, "rule": "random", "seed": 0,
                                                           "ranked": 60, "instances": len(dataset.train)}
    np.testing.assert_array_equal(teacher.ids["train"][mask], full.ids["train"][mask])
    assert (teacher.ids["train"][~mask] == 0).all()
    np.testing.assert_array_equal(teacher.ids["test"], full.ids["test"])    # val/test in full


def test_a_smaller_budget_is_a_subset_of_a_larger_one(dataset, tmp_path):
    for rule in ("random", "recent"):
        small, large = (budgeted(dataset, tmp_path, b, rule).ranked_rows("train") for b in (20, 80))
        assert (small <= large).all() and small.sum() == 20, rule


def test_restrict_cuts_a_computed_budget_to_the_smaller_one_it_would_have_computed(dataset, tmp_path):
    large = budgeted(dataset, tmp_path, 80, "recent")
    cut = restrict(large, 0.1)
    direct = budgeted(dataset, tmp_path, 0.1, "recent")
    np.testing.assert_array_equal(cut.ranked["train"], direct.ranked["train"])
    np.testing.assert_array_equal(cut.ids["train"], direct.ids["train"])
    with pytest.raises(TeacherError, match="above the"):
        restrict(cut, 80)


def test_recent_ranks_each_users_latest_instance_first(dataset):
    order = budget_order(dataset, "recent", seed=0)
    users = dataset.train.user
    first = order[:len(np.unique(users))]
    assert sorted(users[first]) == sorted(np.unique(users))            # one instance per user
    for row in first:
        mine = np.flatnonzero(users == users[row])
        assert dataset.train.time[row] == dataset.train.time[mine].max()


def test_the_random_order_depends_on_the_seed_and_only_on_it(dataset):
    assert (budget_order(dataset, "random", 1) == budget_order(dataset, "random", 1)).all()
    assert not (budget_order(dataset, "random", 1) == budget_order(dataset, "random", 2)).all()


def test_uncertain_puts_the_quick_students_least_sure_instances_first(dataset):
    from distill.teacher.budget import _student_margins
    order, count, record = select(dataset, 30, "uncertain", seed=0)
    assert record["rule"] == "uncertain" and count == 30
    assert sorted(order.tolist()) == list(range(len(dataset.train)))   # a permutation of the rows
    margins = _student_margins(dataset, 0, None, "cpu")                  # the same seeded quick student
    assert (np.diff(margins[order]) >= 0).all() and margins[order[0]] < margins[order[-1]]


def test_the_semantic_teacher_takes_a_budget_too(dataset, tmp_path):
    teacher = budgeted(dataset, tmp_path, 0.25, kind="semantic")
    assert teacher.ranked_rows("train").sum() == budget_count(0.25, len(dataset.train))


def test_damaged_budget_files_are_refused(dataset, tmp_path):
    from safetensors.numpy import load_file, save_file
    teacher = budgeted(dataset, tmp_path, 40)
    ranks = teacher.path / "ranks.safetensors"
    arrays = load_file(str(ranks))
    arrays["train_ranked"][arrays["train_order"][0]] = 0                # the mask no longer matches the order
    save_file(arrays, str(ranks))
    with pytest.raises(TeacherError, match="does not mark the first 40 rows of train_order"):
        TeacherArtifacts.load(teacher.path, dataset)


def signal_for(dataset, teacher, **options):
    config = TrainConfig.from_options({"student": "sasrec", "candidate_k": 5, **options})
    return TeacherSignal(teacher, config, torch.device("cpu"))


def test_the_ranking_term_weighs_only_ranked_rows_and_averages_over_them(dataset, tmp_path):
    teacher = budgeted(dataset, tmp_path, 30)
    signal = signal_for(dataset, teacher)
    mask = torch.as_tensor(teacher.ranked_rows("train"))
    idx = torch.arange(64)
    weights = signal.batch_weights(idx)
    assert (weights[~mask[idx]] == 0).all()
    ranked = int(mask[idx].sum())
    assert ranked > 0 and torch.allclose(weights[mask[idx]], torch.full((ranked,), 64 / ranked))
    assert torch.isclose(weights.mean(), torch.tensor(1.0))           # the mean over the batch: over its ranked rows


def test_without_a_budget_the_weights_are_unchanged(dataset, full):
    assert signal_for(dataset, full).batch_weights(torch.arange(8)) is None


def test_confidence_paper_takes_its_minimum_over_ranked_rows_only(dataset, tmp_path):
    teacher = budgeted(dataset, tmp_path, 30)
    weights = signal_for(dataset, teacher, confidence="paper").instance_weights
    mask = torch.as_tensor(teacher.ranked_rows("train"))
    assert weights[mask].max() == pytest.approx(1.0) and (weights <= 1.0 + 1e-6).all()


def test_train_distils_from_a_budgeted_teacher_of_each_kind(dataset, tmp_path):
    from distill.train import train
    teacher = budgeted(dataset, tmp_path, 0.5)
    result = train(dataset, TrainConfig.from_options({"student": "sasrec", "epochs": 1, "hidden": 16,
                                                      "candidate_k": 5, "lam": "0.5"}), teacher)
    assert result.lam == 0.5 and np.isfinite(result.history[-1]["loss"])


def test_the_cli_takes_budget_flags_and_reports_what_it_ranked(dataset, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "distill", "teacher", "titles", "--data", dataset.path,
                           "--budget", "0.2", "--budget-rule", "recent", "--out", tmp_path / "t"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    n = len(dataset.train)
    assert f"ranked {budget_count(0.2, n):,} of {n:,} training instances (budget 0.2, rule recent" in proc.stdout
    assert json.loads((tmp_path / "t" / "teacher.json").read_text())["budget"]["rule"] == "recent"


@pytest.mark.parametrize("text,fragment", [("0", "ranks no instance"), ("2.5", "not a fraction"),
                                           ("ten", "give a count")])
def test_the_cli_refuses_a_bad_budget_in_one_line(dataset, tmp_path, text, fragment):
    proc = subprocess.run([sys.executable, "-m", "distill", "teacher", "titles", "--data", dataset.path,
                           "--budget", text, "--out", tmp_path / "t"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and fragment in proc.stderr
    assert not (tmp_path / "t").exists()


def test_a_sweep_over_budget_cuts_each_point_from_one_teacher(dataset, tmp_path):
    from distill.sweep import run_sweep
    teacher = budgeted(dataset, tmp_path, 1.0, "recent")
    sweep = run_sweep(dataset, teacher.path, [{"budget": 0.1}, {"budget": 0.5}],
                      {"student": "sasrec", "epochs": 1, "hidden": 16, "candidate_k": 5, "lam": "0.5"}, tmp_path / "s")
    ranked = [TeacherArtifacts.load(tmp_path / "s" / f"teacher-point-{i}", dataset).meta["budget"]["ranked"]
              for i in (0, 1)]
    assert ranked == [budget_count(0.1, len(dataset.train)), budget_count(0.5, len(dataset.train))]
    assert [p["point"] for p in sweep["points"]] == [{"budget": 0.1}, {"budget": 0.5}]


def test_a_sweep_over_budget_needs_a_budgeted_teacher(dataset, full, tmp_path):
    from distill.sweep import run_sweep
    with pytest.raises(ConfigError, match="compute it with --budget at the largest budget"):
        run_sweep(dataset, full.path, [{"budget": 0.1}], {"student": "sasrec", "epochs": 1}, tmp_path / "s")
