"""The one run recipe: teacher -> baseline student -> distilled student (docs/architecture.md §3).

The command line's `demo`, `distill.pipeline` and the service's stages all go through these
functions. Each step is skipped when its output is complete, so a rerun (or a redelivered task)
repeats no finished work.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Callable

import numpy as np

from distill.config import TrainConfig
from distill.errors import ConfigError
from distill.teacher.registry import TEACHERS, build_teacher, parse_teacher

ROLES = ("teacher", "baseline", "distilled")
MAX_SEEDS = 20


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
    return _ensure_student(dataset, config, lambda: _load_teacher(dataset, teacher_dir), out, callbacks, log)


def _load_teacher(dataset, teacher_dir: Path | None):
    from distill.teacher.artifacts import TeacherArtifacts
    return TeacherArtifacts.load(teacher_dir, dataset) if teacher_dir is not None else None


def _ensure_student(dataset, config: TrainConfig, load_teacher: Callable[[], object], out: str | Path,
                    callbacks, log: Callable[[str], None] | None) -> dict:
    """`ensure_student` with the teacher's artifacts from `load_teacher`, called only when training."""
    from distill.io import read_json
    out = Path(out)
    if (out / "metrics.json").is_file():
        return read_json(out / "metrics.json")
    from distill.rundir import save_run
    from distill.train import train
    teacher = load_teacher()
    if log is not None:
        role = "baseline" if teacher is None else "distilled"
        log(f"train: {role} student ({config.student}{'' if teacher is None else ', lam=' + config.lam})")
    result = train(dataset, config, teacher, callbacks)
    return save_run(result, dataset, out, teacher)


def seed_dir(out: str | Path, seed: int) -> Path:
    """Where `train_seeds` writes the run of `seed`."""
    return Path(out) / f"seed-{seed}"


def run_dirs(path: str | Path) -> list[Path]:
    """The run directories of one role: `path` when it is a run directory, else its `seed-<s>/` runs."""
    path = Path(path)
    if (path / "metrics.json").is_file():
        return [path]
    runs = sorted((d for d in path.glob("seed-*") if d.name[5:].isdigit() and (d / "metrics.json").is_file()),
                  key=lambda d: int(d.name[5:]))
    if not runs:
        raise ConfigError(f"{path}: neither a run directory (metrics.json) nor a directory of seed-<s>/ runs "
                          "(from `train --seeds N`)")
    return runs


def check_seeds(seeds) -> list[int]:
    """The seeds as a list of distinct ints, 1 to MAX_SEEDS of them, or a ConfigError saying why not."""
    seeds = list(seeds)
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise ConfigError(f"{len(seeds)} seeds: give 1 to {MAX_SEEDS} (e.g. --seeds 3 or --seed-list 0,1,2)")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise ConfigError(f"seeds {seeds}: each must be a whole number >= 0")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {seeds}: each seed may appear once")
    return [int(s) for s in seeds]


def train_seeds(dataset, config: TrainConfig, teacher_dir: Path | None, out: str | Path, seeds: list[int],
                callbacks=None, log: Callable[[str], None] | None = None) -> list[dict]:
    """`ensure_student` once per seed (`config` with that seed) into `out/seed-<s>/`; the teacher's
    artifacts are loaded once, and only if a seed still has to be trained. Returns the metrics in
    the order of `seeds`."""
    seeds = check_seeds(seeds)
    load_teacher = functools.cache(lambda: _load_teacher(dataset, teacher_dir))
    metrics = []
    for i, seed in enumerate(seeds, 1):
        if log is not None:
            log(f"seed {seed} ({i} of {len(seeds)})")
        metrics.append(_ensure_student(dataset, dataclasses.replace(config, seed=seed), load_teacher,
                                       seed_dir(out, seed), _share(callbacks, i - 1, len(seeds)), log))
    return metrics


def train_role(dataset, config: TrainConfig, teacher_dir: Path | None, out: str | Path, seeds: list[int],
               callbacks=None, log: Callable[[str], None] | None = None) -> tuple[list[Path], list[dict]]:
    """One role's students over `seeds`: `out` itself for one seed (the layout of a one-seed run),
    else `out/seed-<s>/` each. With `lam=auto` and several seeds, lambda_d is chosen once for all of
    them, on the mean val metric across seeds (`auto_over_seeds`). Returns (run dirs, metrics) in
    the order of `seeds`."""
    seeds = check_seeds(seeds)
    if len(seeds) == 1:
        return [Path(out)], [ensure_student(dataset, dataclasses.replace(config, seed=seeds[0]), teacher_dir, out,
                                            callbacks, log=log)]
    if config.lam_auto and teacher_dir is not None:
        return [seed_dir(out, s) for s in seeds], auto_over_seeds(dataset, config, teacher_dir, out, seeds,
                                                                   callbacks, log)
    return [seed_dir(out, s) for s in seeds], train_seeds(dataset, config, teacher_dir, out, seeds, callbacks, log)


def _share(callbacks, done: int, total: int):
    """`callbacks` with its progress mapped to the `done`-th of `total` equal trainings."""
    from distill.train import Callbacks
    if callbacks is None:
        return None
    return Callbacks(on_epoch=callbacks.on_epoch, should_cancel=callbacks.should_cancel,
                     on_progress=lambda f: callbacks.progress((done + f) / total))


def auto_over_seeds(dataset, config: TrainConfig, teacher_dir: Path, out: str | Path, seeds: list[int],
                    callbacks=None, log: Callable[[str], None] | None = None) -> list[dict]:
    """`lam=auto` over several seeds: every lambda_d of LAM_GRID trained with every seed (into
    `out/lam-<l>/seed-<s>/`, lambda_d 0 without the teacher, as `train`'s grid), the lambda_d with
    the best *mean* val NDCG@20 across seeds kept (ties to the smaller one), its runs copied to
    `out/seed-<s>/` with the choice (`lam_auto`, every candidate's mean val and test) in their
    metrics.json. As many trainings as one seed's `lam=auto` times the seeds; resumable."""
    import shutil

    from distill.config import LAM_GRID
    from distill.io import atomic_directory, read_json, write_json
    from distill.train import SELECTION_METRIC
    out = Path(out)
    seeds = check_seeds(seeds)
    if all((seed_dir(out, s) / "metrics.json").is_file() for s in seeds):
        return [read_json(seed_dir(out, s) / "metrics.json") for s in seeds]
    load_teacher = functools.cache(lambda: _load_teacher(dataset, teacher_dir))
    candidates: dict[float, list[dict]] = {}
    total = len(LAM_GRID) * len(seeds)
    for i, lam in enumerate(LAM_GRID):
        fixed = dataclasses.replace(config, lam=str(lam))
        candidates[lam] = []
        for j, seed in enumerate(seeds):
            if log is not None:
                log(f"lambda_d {lam}, seed {seed} ({i * len(seeds) + j + 1} of {total})")
            candidates[lam].append(_ensure_student(
                dataset, dataclasses.replace(fixed, seed=seed), load_teacher if lam > 0 else (lambda: None),
                out / f"lam-{lam}" / f"seed-{seed}", _share(callbacks, i * len(seeds) + j, total), log))
    mean = {lam: float(np.mean([m["val"].get(SELECTION_METRIC, 0.0) for m in runs])) for lam, runs in candidates.items()}
    best = max(LAM_GRID, key=lambda lam: (mean[lam], -lam))
    choice = {
        "grid": list(LAM_GRID), "chosen": best, "selected_on": "val, the mean over seeds", "seeds": seeds,
        f"val_{SELECTION_METRIC}": {str(lam): round(value, 6) for lam, value in mean.items()},
        f"test_{SELECTION_METRIC}": {str(lam): round(float(np.mean([m["test"].get(SELECTION_METRIC, 0.0) for m in runs])), 6)
                                     for lam, runs in candidates.items()},
        f"val_{SELECTION_METRIC}_per_seed": {str(lam): [m["val"].get(SELECTION_METRIC, 0.0) for m in runs]
                                             for lam, runs in candidates.items()},
        "baseline_val": mean[0.0],
        "best_epoch": {str(lam): [m["best_epoch"] for m in runs] for lam, runs in candidates.items()},
        "stopped_by": {str(lam): [m.get("stopped_by") for m in runs] for lam, runs in candidates.items()},
    }
    metrics = []
    for seed, run in zip(seeds, candidates[best]):
        target = seed_dir(out, seed)
        if not (target / "metrics.json").is_file():
            with atomic_directory(target) as tmp:
                shutil.copytree(out / f"lam-{best}" / f"seed-{seed}", tmp, dirs_exist_ok=True)
                write_json(tmp / "metrics.json", {**run, "lam_auto": choice})
        metrics.append(read_json(target / "metrics.json"))
    return metrics


def seed_summary(metrics_list: list[dict]) -> dict:
    """The mean and the t interval over seeds (`distill.stats.t_interval`) of every val and test
    metric of the runs' metrics.json: {"metrics": {split: {metric: mean}}, "uncertainty": {split:
    {metric: t_interval}}, "seeds": [seed of each run]}."""
    from distill.stats import t_interval
    if not metrics_list:
        raise ConfigError("seed_summary needs the metrics of at least one run")
    uncertainty = {split: {name: t_interval([m[split][name] for m in metrics_list]) for name in metrics_list[0][split]}
                   for split in ("val", "test") if split in metrics_list[0]}
    return {"metrics": {split: {name: interval["mean"] for name, interval in values.items()}
                        for split, values in uncertainty.items()},
            "uncertainty": uncertainty,
            "seeds": [m["protocol"]["seed"] for m in metrics_list]}


def compare_students(dataset, distilled_dirs: list, baseline_dirs: list, teacher_dir: Path | None = None,
                     metric: str = "ndcg@20") -> dict:
    """Paired comparisons on the test split (`distill.stats.paired_comparison`): the distilled
    students against the baseline ones and, with `teacher_dir`, against the teacher (None, with
    `teacher_note` saying why, when the teacher's lists are shorter than the metric's cutoff). Each role's
    per-instance `metric` is averaged over its seeds' runs first, then over each user's instances,
    so the pairs are users."""
    from distill.evaluate import per_user_mean, per_user_scores, teacher_per_user_scores
    from distill.inference import TrainedStudent
    from distill.io import read_json
    from distill.stats import paired_comparison
    from distill.teacher.artifacts import TeacherArtifacts
    cutoff = _metric_cutoff(metric)
    split = dataset.test

    def seed_mean(dirs: list) -> np.ndarray:
        if not dirs:
            raise ConfigError("compare_students needs at least one run directory per student role")
        for path in dirs:
            stored = read_json(Path(path) / "config.json")["dataset_hash"]
            if stored != dataset.content_hash:
                raise ConfigError(f"{path}: trained on another dataset (hash {stored}, this one {dataset.content_hash})")
        return np.mean([per_user_scores(TrainedStudent.load(path).model, split, (cutoff,))[metric] for path in dirs], 0)

    distilled, baseline = seed_mean(distilled_dirs), seed_mean(baseline_dirs)
    result = {"distilled_vs_baseline": paired_comparison(per_user_mean(distilled, split.user)[1],
                                                         per_user_mean(baseline, split.user)[1], metric=metric,
                                                         split="test"),
              "distilled_vs_teacher": None,
              "seeds": {role: [read_json(Path(path) / "metrics.json")["protocol"]["seed"] for path in dirs]
                        for role, dirs in (("distilled", distilled_dirs), ("baseline", baseline_dirs))},
              "averaging": "per-instance scores averaged over seeds, then over each user's instances"}
    if teacher_dir is not None:
        teacher_artifacts = TeacherArtifacts.load(teacher_dir, dataset)
        ids = teacher_artifacts.ids["test"]
        if ids.shape[1] < cutoff:
            result["teacher_note"] = (f"no comparison with the teacher: its lists hold {ids.shape[1]} items and "
                                      f"{metric} needs {cutoff} (rebuild the teacher with k={cutoff})")
            return result
        # the rows the teacher ranked: a --limit smoke teacher's first rows, an eval_sample's sampled rows
        mask = teacher_artifacts.ranked_rows("test")
        rows = np.arange(len(ids)) if mask is None else np.flatnonzero(mask)
        teacher = teacher_per_user_scores(ids[rows], split.next[rows], (cutoff,))[metric]
        _, teacher_users = per_user_mean(teacher, split.user[rows])
        result["distilled_vs_teacher"] = paired_comparison(per_user_mean(distilled[rows], split.user[rows])[1],
                                                           teacher_users, metric=metric, split="test")
    return result


def _metric_cutoff(metric: str) -> int:
    name, _, k = metric.partition("@")
    if name not in ("hr", "ndcg", "mrr") or not k.isdigit() or int(k) < 1:
        raise ConfigError(f"metric {metric!r}: use hr@K, ndcg@K or mrr@K, e.g. ndcg@20")
    return int(k)
