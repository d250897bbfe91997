"""`distill.sweep` and `python -m distill sweep`: grid and random points, the choice on val, and a
resumable sweep of real (tiny) trainings."""

import contextlib
import io
import json

import pytest

import distill.train
from distill.__main__ import main
from distill.data import PreparedDataset
from distill.errors import ConfigError
from distill.recipe import ensure_teacher
from distill.sweep import MAX_POINTS, best_on_val, expand_grid, parse_grid_args, random_points, run_sweep

from factories import chain_dataset

TINY = ["--set", "epochs=2", "--set", "hidden=8", "--set", "student=gru4rec"]


def cli(*args) -> tuple[int, str, str]:
    """`python -m distill ...` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def no_training(monkeypatch):
    def fails(*args, **kwargs):
        raise AssertionError("a student was trained")

    monkeypatch.setattr(distill.train, "train", fails)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny prepared dataset at root/data and a title teacher (k=10) at root/teacher."""
    root = tmp_path_factory.mktemp("sweep")
    (root / "data").mkdir()
    chain_dataset(num_items=30, users=60).save(root / "data")
    ensure_teacher(PreparedDataset.load(root / "data"), {"kind": "titles", "k": 10}, root / "teacher")
    return root


@pytest.fixture(scope="module")
def swept(world):
    """A CLI sweep of three lambda_d values (gru4rec, 2 epochs): (its directory, exit code, stdout)."""
    code, stdout, stderr = cli("sweep", "--data", world / "data", "--teacher", world / "teacher",
                               "--grid", "lam=0,0.3,0.7", *TINY, "--out", world / "sweep")
    assert code == 0, stderr
    return world / "sweep", stdout


# ----------------------------------------------------------------------------- expand_grid

def test_expand_grid_is_the_product_with_the_first_key_slowest():
    assert expand_grid({"lam": [0.0, 0.5], "student": ["sasrec", "dros", "caser"]}) == [
        {"lam": 0.0, "student": "sasrec"}, {"lam": 0.0, "student": "dros"}, {"lam": 0.0, "student": "caser"},
        {"lam": 0.5, "student": "sasrec"}, {"lam": 0.5, "student": "dros"}, {"lam": 0.5, "student": "caser"}]


def test_expand_grid_allows_exactly_max_points():
    assert len(expand_grid({"hidden": list(range(1, 9)), "epochs": list(range(1, MAX_POINTS // 8 + 1))})) == MAX_POINTS


@pytest.mark.parametrize("grid,fragment", [
    ({}, "the grid is empty"),
    ({"lam": []}, "grid option lam: no values"),
    ({"lam": 0.5}, "grid option lam: expected a list"),
    ({"lam": "0.5"}, "grid option lam: expected a list"),
    ({"lam": [0, 0.0]}, "grid option lam: the value 0.0 appears twice"),
    ({"hidden": list(range(1, 14)), "lr": [0.1, 0.2, 0.3, 0.4, 0.5]}, "65 points (13 hidden x 5 lr); at most 64"),
])
def test_expand_grid_refuses_bad_grids(grid, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        expand_grid(grid)


# ----------------------------------------------------------------------------- random_points

SPACE = {"lam": {"low": 0, "high": 1}, "lr": {"low": 1e-4, "high": 1e-2, "log": True},
         "hidden": {"low": 4, "high": 6, "int": True}, "student": ["sasrec", "dros"]}


def test_random_points_are_the_same_for_a_seed_and_differ_across_seeds():
    assert random_points(SPACE, 10, seed=3) == random_points(SPACE, 10, seed=3)
    assert random_points(SPACE, 10, seed=3) != random_points(SPACE, 10, seed=4)


def test_random_points_keep_every_range_and_type():
    points = random_points(SPACE, MAX_POINTS, seed=0)
    assert len(points) == MAX_POINTS and all(list(p) == list(SPACE) for p in points)
    assert all(type(p["lam"]) is float and 0 <= p["lam"] < 1 for p in points)
    assert all(type(p["lr"]) is float and 1e-4 <= p["lr"] < 1e-2 for p in points)
    assert sum(p["lr"] < 1e-3 for p in points) > MAX_POINTS / 4   # log-uniform: half below the geometric middle
    assert {p["hidden"] for p in points} == {4, 5, 6} and all(type(p["hidden"]) is int for p in points)
    assert {p["student"] for p in points} == {"sasrec", "dros"}


def test_random_points_are_distinct_and_refuse_more_than_the_space_holds():
    finite = {"hidden": {"low": 1, "high": 3, "int": True}, "student": ["sasrec", "dros"]}
    points = random_points(finite, 6, seed=0)
    assert sorted((p["hidden"], p["student"]) for p in points) == sorted(
        (h, s) for h in (1, 2, 3) for s in ("sasrec", "dros"))
    with pytest.raises(ConfigError, match="holds only 6 distinct points, fewer than the 7 asked"):
        random_points(finite, 7, seed=0)


@pytest.mark.parametrize("space,n,fragment", [
    (SPACE, 0, "--random 0: give a number of points from 1 to 64"),
    (SPACE, MAX_POINTS + 1, "--random 65"),
    ({}, 1, "the random space is empty"),
    ({"lam": []}, 1, "random space option lam: no choices"),
    ({"lam": 0.5}, 1, "random space option lam: expected a list of choices"),
    ({"lam": {"low": 1, "high": 1}}, 1, "low=1 must be less than high=1"),
    ({"lam": {"low": 0}}, 1, 'a range is {"low": a, "high": b}'),
    ({"lr": {"low": 0, "high": 1, "log": True}}, 1, "a log range needs low > 0"),
    ({"hidden": {"low": 1.5, "high": 4, "int": True}}, 1, "an int range needs whole numbers"),
    ({"hidden": {"low": 1, "high": 4, "int": True, "log": True}}, 1, '"log" and "int" do not combine'),
    ({"lam": {"low": "a", "high": 1}}, 1, "low='a' is not a finite number"),
])
def test_random_points_refuse_bad_spaces(space, n, fragment):
    with pytest.raises(ConfigError) as caught:
        random_points(space, n, seed=0)
    assert fragment in str(caught.value)


# ----------------------------------------------------------------------------- best_on_val

def test_best_on_val_takes_the_val_argmax_even_when_test_prefers_another_point():
    results = [{"val": {"ndcg@20": 0.10}, "test": {"ndcg@20": 0.30}},
               {"val": {"ndcg@20": 0.20}, "test": {"ndcg@20": 0.05}},
               {"val": {"ndcg@20": 0.15}, "test": {"ndcg@20": 0.40}}]
    assert best_on_val(results) == 1


def test_best_on_val_ties_go_to_the_earliest_point_and_results_without_val_are_skipped():
    results = [{"test": {"ndcg@20": 0.9}}, {"val": {"hr@20": 0.3}}, {"val": {"hr@20": 0.5}},
               {"val": {"hr@20": 0.5}}, {"val": None}]
    assert best_on_val(results, metric="hr@20") == 2


def test_best_on_val_refuses_results_without_any_val():
    with pytest.raises(ConfigError, match="no point has a val ndcg@20"):
        best_on_val([{"test": {"ndcg@20": 0.5}}, {"val": {"hr@20": 0.5}}])


# ----------------------------------------------------------------------------- parse_grid_args

def test_parse_grid_args_reads_numbers_and_names():
    assert parse_grid_args(["lam=0,0.3,0.7", "student=sasrec,dros", "epochs=1, 2", "lam_mix=auto,0.5"]) == {
        "lam": [0.0, 0.3, 0.7], "student": ["sasrec", "dros"], "epochs": [1, 2], "lam_mix": ["auto", 0.5]}
    assert all(type(v) is float for v in parse_grid_args(["lam=0,0.3"])["lam"])
    assert all(type(v) is int for v in parse_grid_args(["epochs=1,2"])["epochs"])


@pytest.mark.parametrize("items,fragment", [
    (["lam=0,0.5", "lam=1"], "--grid 'lam=1': lam is already in the grid"),
    (["lam"], "--grid 'lam': expected KEY=V1,V2"),
    (["=1,2"], "--grid '=1,2': expected KEY=V1,V2"),
    (["lam=0,,1"], "--grid 'lam=0,,1': an empty value"),
    (["lam="], "--grid 'lam=': an empty value"),
])
def test_parse_grid_args_refuses_malformed_items(items, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_grid_args(items)
    assert fragment in str(caught.value)


# ----------------------------------------------------------------------------- run_sweep

def test_run_sweep_checks_every_point_before_training_any(world, tmp_path, monkeypatch):
    no_training(monkeypatch)
    points = [{"lam": 0.3}, {"lam": 0.5}, {"lam": 0.5, "candidate_k": 20}]
    with pytest.raises(ConfigError, match=r"sweep point 2 \(lam=0.5 candidate_k=20\): .*candidate_k=20 is more than "
                                          r"the teacher's k=10"):
        run_sweep(world / "data", world / "teacher", points, {"epochs": 1}, tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_run_sweep_refuses_a_seed_among_the_options(world, tmp_path):
    with pytest.raises(ConfigError, match="seed is not a sweep option"):
        run_sweep(world / "data", world / "teacher", [{"seed": 1}], {}, tmp_path / "sweep")


def test_run_sweep_with_several_seeds_reports_their_mean_and_interval(world, tmp_path):
    sweep = run_sweep(world / "data", world / "teacher", [{"lam": 0.5}], {"epochs": 1, "hidden": 8,
                      "student": "gru4rec"}, tmp_path / "sweep", seeds=[3, 4])
    entry = sweep["points"][0]
    runs = [json.loads((tmp_path / "sweep" / "point-0" / f"seed-{s}" / "metrics.json").read_text()) for s in (3, 4)]
    assert entry["seeds"] == [3, 4] and entry["lam"] == [0.5, 0.5] and len(entry["best_epoch"]) == 2
    assert entry["val"]["ndcg@20"] == pytest.approx(sum(r["val"]["ndcg@20"] for r in runs) / 2)
    assert entry["uncertainty"]["test"]["ndcg@20"]["n"] == 2
    assert (tmp_path / "sweep" / "point-0" / "seeds.json").is_file()


# ----------------------------------------------------------------------------- the command line

def test_sweep_command_has_help():
    with pytest.raises(SystemExit) as exited, contextlib.redirect_stdout(io.StringIO()) as out:
        main(["sweep", "--help"])
    assert exited.value.code == 0 and "usage: python -m distill sweep" in out.getvalue()


def test_sweep_writes_every_point_and_chooses_the_val_argmax(swept):
    out, _ = swept
    sweep = json.loads((out / "sweep.json").read_text())
    assert [p["point"] for p in sweep["points"]] == [{"lam": 0.0}, {"lam": 0.3}, {"lam": 0.7}]
    assert sweep["selected_on"] == "val" and sweep["metric"] == "ndcg@20" and sweep["seeds"] == [0]
    runs = [json.loads((out / f"point-{i}" / "metrics.json").read_text()) for i in range(3)]
    val = [r["val"]["ndcg@20"] for r in runs]
    assert sweep["best"] == val.index(max(val))
    for i, (entry, run) in enumerate(zip(sweep["points"], runs)):
        assert entry["index"] == i and entry["val"] == run["val"] and entry["test"] == run["test"]
        assert (entry["lam"], entry["best_epoch"], entry["stopped_by"]) == (run["lam"], run["best_epoch"],
                                                                             run["stopped_by"])
        assert run["config"]["lam"] == str([0.0, 0.3, 0.7][i]) and run["config"]["epochs"] == 2


def test_sweep_prints_the_table_with_the_best_marked(swept):
    out, stdout = swept
    best = json.loads((out / "sweep.json").read_text())["best"]
    rows = [line for line in stdout.splitlines() if line[:1] in ("*", " ") and line[3:4].isdigit()]
    assert len(rows) == 3 and [row[0] for row in rows] == ["*" if i == best else " " for i in range(3)]
    assert "val ndcg@20  val hr@20  test ndcg@20  test hr@20" in stdout
    assert f"* best on val ndcg@20: point {best} " in stdout


def test_a_rerun_reuses_every_complete_point(swept, world, monkeypatch):
    out, _ = swept
    stamps = [(out / f"point-{i}" / "metrics.json").stat().st_mtime_ns for i in range(3)]
    before = json.loads((out / "sweep.json").read_text())
    no_training(monkeypatch)
    code, stdout, stderr = cli("sweep", "--data", world / "data", "--teacher", world / "teacher",
                               "--grid", "lam=0,0.3,0.7", *TINY, "--out", out)
    assert code == 0, stderr
    assert [(out / f"point-{i}" / "metrics.json").stat().st_mtime_ns for i in range(3)] == stamps
    assert stdout.count("(complete: reused)") == 3
    assert json.loads((out / "sweep.json").read_text()) == before


def test_a_rerun_with_another_config_is_refused_before_training(swept, world, monkeypatch):
    out, _ = swept
    no_training(monkeypatch)
    code, _, stderr = cli("sweep", "--data", world / "data", "--teacher", world / "teacher", "--grid",
                          "lam=0,0.3,0.7", *TINY, "--set", "lr=0.01", "--out", out)
    assert code == 2 and "sweep point 0 (lam=0): " in stderr and "holds a run of another config (lr " in stderr


@pytest.mark.parametrize("flags,fragment", [
    (["--grid", "lam=0,0.5", "--grid", "studnt=gru4rec"], "sweep point 0 (lam=0 studnt=gru4rec): unknown option "
                                                          "'studnt'; did you mean 'student'?"),
    (["--grid", "lam=0,0.5", "--grid", "lam=1"], "lam is already in the grid"),
    (["--random", "2"], "--random N draws from a space: give --space FILE"),
    (["--grid", "lam=0", "--seeds", "30"], "--seeds 30: give 1 to 20"),
    (["--grid", "lam=0", "--metric", "ndcg@7"], "metric 'ndcg@7'"),
])
def test_sweep_refuses_bad_input_with_one_line(world, tmp_path, flags, fragment):
    code, _, stderr = cli("sweep", "--data", world / "data", "--teacher", world / "teacher", *flags,
                          "--out", tmp_path / "sweep")
    assert code == 2 and fragment in stderr and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "sweep").exists()


def test_sweep_draws_random_points_from_a_space_file(world, tmp_path):
    (tmp_path / "space.json").write_text(json.dumps({"lam": {"low": 0, "high": 1}, "ed_weight": [0.1, 0.3]}))
    code, _, stderr = cli("sweep", "--data", world / "data", "--teacher", world / "teacher", "--random", 2,
                          "--space", tmp_path / "space.json", "--random-seed", 5, "--set", "epochs=1",
                          "--set", "hidden=8", "--set", "student=gru4rec", "--quiet", "--out", tmp_path / "sweep")
    assert code == 0, stderr
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [p["point"] for p in sweep["points"]] == random_points(
        {"lam": {"low": 0, "high": 1}, "ed_weight": [0.1, 0.3]}, 2, seed=5)
