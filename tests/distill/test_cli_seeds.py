"""`train --seeds` / `--seed-list` / `--baseline` and `demo --seeds`: per-seed runs, their interval,
the paired comparison and its verdict line."""

import json
import re
import subprocess
import sys

import pytest

TINY = ["--set", "hidden=8", "--quiet"]


def run(*args, check=False):
    proc = subprocess.run([sys.executable, "-m", "distill", *map(str, args)], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two plain and two distilled gru4rec students on a small synthetic catalogue."""
    root = tmp_path_factory.mktemp("seeds-cli")
    run("synth", "--out", root / "syn", "--users", 40, "--items", 60, check=True)
    run("prepare", "--format", "csv", "--input", root / "syn" / "interactions.csv",
        "--items", root / "syn" / "items.csv", "--out", root / "data", check=True)
    run("teacher", "titles", "--data", root / "data", "--k", 20, "--out", root / "teacher", check=True)
    plain = run("train", "--data", root / "data", "--student", "gru4rec", "--epochs", 1, "--seeds", 2, *TINY,
                "--out", root / "plain", check=True)
    distilled = run("train", "--data", root / "data", "--student", "gru4rec", "--epochs", 1, "--seed-list", "0,1",
                    "--teacher", root / "teacher", "--set", "lam=0.5", "--baseline", root / "plain", *TINY,
                    "--out", root / "distilled", check=True)
    return root, plain.stdout, distilled.stdout


def test_train_seeds_writes_one_run_per_seed_and_their_interval(world):
    root, stdout, _ = world
    summary = json.loads((root / "plain" / "seeds.json").read_text())
    assert summary["seeds"] == [0, 1]
    assert summary["uncertainty"]["test"]["ndcg@20"]["n"] == 2
    for seed in (0, 1):
        assert json.loads((root / "plain" / f"seed-{seed}" / "metrics.json").read_text())["protocol"]["seed"] == seed
    assert "test, t interval over 2 seeds: hr@20" in stdout


def test_train_with_a_baseline_writes_the_comparison_and_prints_the_verdict(world):
    root, _, stdout = world
    comparison = json.loads((root / "distilled" / "comparison.json").read_text())
    assert comparison["seeds"] == {"distilled": [0, 1], "baseline": [0, 1]}
    assert comparison["distilled_vs_baseline"]["test"] == "wilcoxon signed-rank"
    assert comparison["distilled_vs_teacher"]["n_users"] == comparison["distilled_vs_baseline"]["n_users"]
    verdict = re.search(r"distilled gru4rec vs plain: [+-]\d+\.\d% NDCG@20 \[95% CI [+-]\d+\.\d, [+-]\d+\.\d\], "
                        r"p [=<] [\d.e-]+ \(Wilcoxon, \d+ test users, 2 seeds\); vs teacher [+-]\d+\.\d%", stdout)
    assert verdict, stdout


@pytest.mark.parametrize("flags,fragment", [
    (["--seeds", 21], "21 seeds: give 1 to 20"),
    (["--seeds", 0], "0 seeds: give 1 to 20"),
    (["--seed-list", "1,x"], "--seed-list 1,x: give whole numbers"),
    (["--seed-list", "2,2"], "each seed may appear once"),
    (["--seed-list", "1,2", "--seed", 3], "drop --seed"),
    (["--baseline", "somewhere"], "give --teacher TDIR too"),
])
def test_train_refuses_bad_seed_options(world, tmp_path, flags, fragment):
    root, _, _ = world
    proc = run("train", "--data", root / "data", "--student", "gru4rec", *flags, "--out", tmp_path / "run")
    assert proc.returncode == 2 and fragment in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_baseline_that_holds_no_runs(world, tmp_path):
    root, _, _ = world
    (tmp_path / "empty").mkdir()
    proc = run("train", "--data", root / "data", "--student", "gru4rec", "--epochs", 1, "--teacher", root / "teacher",
               "--set", "lam=0.5", "--baseline", tmp_path / "empty", *TINY, "--out", tmp_path / "run")
    assert proc.returncode == 2 and "neither a run directory" in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()   # refused before any training


def test_demo_with_seeds_reports_their_interval_and_ends_with_the_verdict(world, tmp_path):
    root, _, _ = world
    proc = run("demo", "--out", tmp_path / "demo", "--data", root / "syn" / "interactions.csv",
               "--items", root / "syn" / "items.csv", "--student", "gru4rec", "--seeds", 2,
               "--set", "epochs=1", "--set", "hidden=8", check=True)
    for role in ("baseline", "distilled"):
        assert (tmp_path / "demo" / f"student-{role}" / "seed-1" / "metrics.json").is_file()
        assert f"{role} test, t interval over 2 seeds: hr@20" in proc.stdout
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["protocol"]["seed"] == [0, 1]
    comparison = json.loads((tmp_path / "demo" / "comparison.json").read_text())
    assert comparison == summary["comparison"] and comparison["seeds"]["distilled"] == [0, 1]
    assert proc.stdout.strip().splitlines()[-1].startswith("distilled gru4rec vs plain: ")
    assert "2 seeds); vs teacher " in proc.stdout.strip().splitlines()[-1]
