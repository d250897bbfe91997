"""The one run recipe: teacher -> baseline -> distilled, each step skipped once its output is complete."""

import json

import pytest

import distill.train
from distill.recipe import ROLES, ensure_student, ensure_teacher, student_config

from factories import chain_dataset


def test_roles():
    assert ROLES == ("teacher", "baseline", "distilled")


def test_the_baseline_ignores_the_distill_section_and_the_distilled_defaults_to_lam_auto():
    baseline = student_config("gru4rec", {"epochs": 3}, {"lam": "0.5", "ed_weight": 0.1}, distilled=False)
    assert (baseline.student, baseline.epochs, baseline.lam, baseline.ed_weight) == ("gru4rec", 3, "0.7", 0.3)
    distilled = student_config("gru4rec", {"epochs": 3}, {"ed_weight": 0.1}, distilled=True)
    assert (distilled.epochs, distilled.lam, distilled.ed_weight) == (3, "auto", 0.1)
    assert student_config("sasrec", {}, {"lam": "0.5"}, distilled=True).lam == "0.5"
    # lam is a distill option: the train section's is replaced by auto (as `demo --set lam=...` always was)
    assert student_config("sasrec", {"lam": "0.3"}, {}, distilled=True).lam == "auto"


@pytest.fixture(scope="module")
def dataset():
    return chain_dataset(num_items=30, users=60)


def test_ensure_teacher_computes_once(dataset, tmp_path, monkeypatch):
    lines = []
    out = ensure_teacher(dataset, {"backend": "titles", "k": 5}, tmp_path / "teacher", log=lines.append)
    assert out == tmp_path / "teacher" and (out / "teacher.json").is_file()
    assert lines == ["teacher: title similarity (TF-IDF) on train/val/test"]
    stamp = (out / "ranks.safetensors").stat().st_mtime_ns

    def fails(*args, **kwargs):
        raise AssertionError("the teacher was computed again")

    monkeypatch.setattr("distill.recipe.build_teacher", fails)
    assert ensure_teacher(dataset, {"kind": "titles", "k": 5}, out, log=lines.append) == out
    assert len(lines) == 1 and (out / "ranks.safetensors").stat().st_mtime_ns == stamp


def test_ensure_student_trains_the_baseline_and_the_distilled_once(dataset, tmp_path, monkeypatch):
    teacher = ensure_teacher(dataset, {"kind": "titles", "k": 5}, tmp_path / "teacher")
    lines = []
    baseline = ensure_student(dataset, student_config("gru4rec", {"epochs": 1}, {}, distilled=False), None,
                              tmp_path / "baseline", log=lines.append)
    distilled = ensure_student(dataset, student_config("gru4rec", {"epochs": 1}, {"lam": "0.5", "candidate_k": 5},
                                                       distilled=True), teacher, tmp_path / "distilled",
                               log=lines.append)
    assert lines == ["train: baseline student (gru4rec)", "train: distilled student (gru4rec, lam=0.5)"]
    assert baseline["teacher"] is None and baseline["distilled"] is False and baseline["lam"] == 0.0
    assert distilled["teacher"]["kind"] == "titles" and distilled["distilled"] is True and distilled["lam"] == 0.5
    assert json.loads((tmp_path / "baseline" / "metrics.json").read_text())["test"] == baseline["test"]

    def fails(*args, **kwargs):
        raise AssertionError("a student was trained again")

    monkeypatch.setattr(distill.train, "train", fails)
    again = ensure_student(dataset, student_config("gru4rec", {"epochs": 1}, {}, distilled=False), None,
                           tmp_path / "baseline", log=lines.append)
    assert again["test"] == baseline["test"] and len(lines) == 2
