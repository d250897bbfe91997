"""The one run recipe: teacher -> baseline student -> distilled student (docs/architecture.md §3).

The command line's `demo`, `distill.pipeline` and the service's stages all go through these
functions. Each step is skipped when its output is complete, so a rerun (or a redelivered task)
repeats no finished work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from distill.config import TrainConfig
from distill.teacher.registry import TEACHERS, build_teacher, parse_teacher

ROLES = ("teacher", "baseline", "distilled")


def student_config(student: str, train: dict, distill: dict, *, distilled: bool) -> TrainConfig:
    """The config of the baseline (`train` options only) or the distilled student (`train`, then
    `lam="auto"` unless `distill` sets it, then `distill`)."""
    options = {"student": student, **(train or {})}
    if distilled:
        options = {**options, "lam": "auto", **(distill or {})}
    return TrainConfig.from_options(options)


def ensure_teacher(dataset, spec: dict, out: str | Path | None, *, cache: str | Path | None = None,
                   log: Callable[[str], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None) -> Path:
    """The teacher's artifacts directory for `spec` (any spelling `parse_teacher` takes): `out` when
    it already holds complete artifacts, else computed by `build_teacher` (which asks `should_cancel`
    every batch or block and raises distill.errors.Cancelled when it says so). For bigrec with
    `out=None`, the cache entry's directory (build_teacher finds a complete entry without work)."""
    spec = parse_teacher(spec)
    kind = spec.pop("kind")
    if out is not None and (Path(out) / "teacher.json").is_file():
        return Path(out)
    if log is not None:
        log(f"teacher: {TEACHERS[kind].description} on train/val/test")
    return build_teacher(kind, dataset, out, cache=cache, log=log, should_cancel=should_cancel, **spec)


def ensure_student(dataset, config: TrainConfig, teacher_dir: Path | None, out: str | Path, callbacks=None,
                   *, log: Callable[[str], None] | None = None) -> dict:
    """Train one student (distilled from the artifacts at `teacher_dir`, or the baseline when it is
    None), write its run directory `out`, return its metrics; reads them back when
    `out/metrics.json` exists."""
    from distill.io import read_json
    out = Path(out)
    if (out / "metrics.json").is_file():
        return read_json(out / "metrics.json")
    from distill.rundir import save_run
    from distill.teacher.artifacts import TeacherArtifacts
    from distill.train import train
    teacher = TeacherArtifacts.load(teacher_dir, dataset) if teacher_dir is not None else None
    if log is not None:
        role = "baseline" if teacher is None else "distilled"
        log(f"train: {role} student ({config.student}{'' if teacher is None else ', lam=' + config.lam})")
    result = train(dataset, config, teacher, callbacks)
    return save_run(result, dataset, out, teacher)
