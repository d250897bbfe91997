"""The stage table: every stage of a run declared once - its name, the queue its task goes to, the
share of the progress bar it fills, and the function that computes it - in run order
(docs/architecture.md §4). Adding a stage is one `Stage(...)` entry plus its function.

A stage function takes the run and a reporter (progress messages, training callbacks, cooperative
cancel) and returns an `Outcome`. It writes its artifacts (a directory that appears complete or not
at all), then its rows with update_or_create; a stage whose artifacts exist is not computed again,
so a redelivered task or a resumed run repeats no finished work. The driver that calls them is
`webapp.studio.pipeline.execute_stage`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.db.models import F

from webapp.studio.models import Artifact, Dataset, Latency, Metric, Run, TeacherCacheEntry

# Options that change how the teacher is computed, not what it computes (sharded and merged is
# byte-identical to unsharded; latency_requests changes only latency.json): not part of the
# teacher cache key.
NOT_IN_KEY = {"shards", "latency_requests", "budget_from"}
# The service's own teacher options, not the library's (stripped before distill.teacher sees them).
# `budget_from`: in a study that sweeps teacher.budget, the largest budget of the study; the teacher
# is computed once at that budget and each point's budget is cut from it (its prefix).
SERVICE_ONLY = {"shards", "budget_from"}


@dataclass(frozen=True)
class Outcome:
    """What a stage function returns: `fan_out` > 0 when the stage is to be computed by that many
    shard tasks instead (the teacher of a sharded BIGRec run), 0 when the stage is complete."""
    fan_out: int = 0


COMPLETE = Outcome()


@dataclass(frozen=True)
class Stage:
    name: str
    queue: str          # the queue kind ("gpu" | "cpu"), prefixed with settings.QUEUE_PREFIX when sent
    weight: float       # share of the run's progress bar this stage fills
    run: Callable       # run(run: Run, reporter) -> Outcome


def storage(*parts) -> Path:
    return Path(settings.STORAGE_ROOT).joinpath(*map(str, parts))


def run_dir(run: Run) -> Path:
    return storage("runs", run.pk)


def train_config(run: Run, distilled: bool):
    """The TrainConfig of the run's baseline or distilled student (the one recipe's rule)."""
    from distill.recipe import student_config
    config = run.config
    return student_config(config["student"], config.get("train", {}), config.get("distill", {}), distilled=distilled)


def _dataset(run: Run):
    from distill.data import PreparedDataset
    return PreparedDataset.load(run.dataset.prepared_dir)


# ----------------------------------------------------------------------------- teacher

def teacher_key(dataset: Dataset, teacher: dict) -> str:
    """The teacher cache key: the dataset's owner, its content and the teacher config. Teachers are
    reused within one owner's runs only, so a run never learns that another user has the same data."""
    teacher = {key: value for key, value in teacher.items() if key not in NOT_IN_KEY}
    source = json.dumps({"owner": dataset.owner_id, "dataset": dataset.content_hash, "teacher": teacher},
                        sort_keys=True)
    return hashlib.sha256(source.encode()).hexdigest()[:32]


def library_spec(teacher: dict) -> dict:
    """The run's teacher section as `distill.teacher` takes it: without the service's `shards`, the
    model and adapter names resolved to their directories under MODEL_ROOT."""
    from webapp.studio.model_store import MODEL_OPTIONS, resolve
    spec = {key: value for key, value in teacher.items() if key not in SERVICE_ONLY}
    for option in MODEL_OPTIONS:
        if spec.get(option) is not None:
            spec[option] = str(resolve(option, spec[option]))
    return spec


def block_cache(run: Run) -> Path:
    """BIGRec's block cache of the run's owner (one per owner, like the teacher cache)."""
    return storage("teacher-blocks", f"owner-{run.owner_id}")


def run_teacher_key(run: Run) -> str:
    return teacher_key(run.dataset, run.config["teacher"])


def teacher_dir(run: Run, key: str | None = None) -> Path:
    """Where the run's teacher artifacts are: the cache entry's directory (for bigrec the library's
    own cache entry, not a copy), else STORAGE_ROOT/teachers/<key> where a teacher is computed."""
    key = key or run_teacher_key(run)
    path = TeacherCacheEntry.objects.filter(key=key).values_list("path", flat=True).first()
    return Path(path) if path else storage("teachers", key)


def _remember_teacher(run: Run, path: Path, key: str | None = None, config: dict | None = None) -> None:
    """Index the teacher at `path` under `key` (the run's own by default), made from `config` (the
    run's teacher section by default)."""
    TeacherCacheEntry.objects.update_or_create(key=key or run_teacher_key(run), defaults={
        "dataset_hash": run.dataset.content_hash, "config": config or run.config["teacher"], "path": str(path)})


def _compute_teacher(run: Run, dataset, spec: dict, out: Path, reporter) -> Path:
    """Compute the teacher `spec` (library spelling) for `run` on its prepared `dataset`: into `out`,
    or for bigrec into its block cache, whose entry directory is the teacher (no copy). Returns
    where it is."""
    from distill.recipe import ensure_teacher
    return ensure_teacher(dataset, spec, None if spec["kind"] == "bigrec" else out, cache=block_cache(run),
                          log=reporter.message, should_cancel=reporter.should_cancel)


def stage_teacher(run: Run, reporter) -> Outcome:
    from distill.train import Cancelled
    teacher = run.config["teacher"]
    spec = library_spec(teacher)
    key = run_teacher_key(run)
    out = teacher_dir(run, key)
    source_budget = teacher.get("budget_from")
    if (out / "teacher.json").is_file():
        reporter.message("teacher: cached")
        if "teacher_cached" not in run.analysis:   # False already when this run's own shards made it
            _update_analysis(run, teacher_cached=True)
        _remember_teacher(run, out, key)   # the files outlive a lost row (a restored database): index them again
        TeacherCacheEntry.objects.filter(key=key).update(hits=F("hits") + 1)
    elif source_budget is not None and source_budget != teacher.get("budget"):
        out = _cut_from_source(run, teacher, source_budget, key, out, reporter)
    else:
        if reporter.should_cancel():
            raise Cancelled("run cancelled")
        shards = teacher.get("shards", 1)
        _update_analysis(run, teacher_cached=False)
        if spec["kind"] == "bigrec" and shards > 1:
            return Outcome(fan_out=shards)
        out = _compute_teacher(run, _dataset(run), spec, out, reporter)
        _remember_teacher(run, out, key)
    _record_metrics(run, "teacher", out / "metrics.json")
    _record_artifacts(run, "teacher", out)
    return COMPLETE


def _cut_from_source(run: Run, teacher: dict, source_budget, key: str, out: Path, reporter) -> Path:
    """A study's point with a smaller teacher budget: the teacher at the study's largest budget
    (computed now unless cached) cut to this point's budget (`distill.teacher.budget.restrict`:
    the prefix of the same order), written to this point's own cache entry."""
    from distill.evaluate import teacher_report
    from distill.io import read_json
    from distill.teacher import TeacherArtifacts
    from distill.teacher.budget import restrict
    from distill.train import Cancelled
    source = {**teacher, "budget": source_budget}
    source_key = teacher_key(run.dataset, source)
    source_dir = teacher_dir(run, source_key)
    dataset = _dataset(run)
    cached = (source_dir / "teacher.json").is_file()
    if not cached:
        if reporter.should_cancel():
            raise Cancelled("run cancelled")
        reporter.message(f"teacher: computing it at the study's largest budget ({source_budget})")
        source_dir = _compute_teacher(run, dataset, library_spec(source), source_dir, reporter)
        _remember_teacher(run, source_dir, source_key, source)
    _update_analysis(run, teacher_cached=cached)
    reporter.message(f"teacher: budget {teacher.get('budget')} cut from budget {source_budget}")
    artifacts = restrict(TeacherArtifacts.load(source_dir, dataset), teacher.get("budget"))
    latency = source_dir / "latency.json"
    artifacts.save(out, metrics=teacher_report(artifacts, dataset),
                   extra={"latency.json": read_json(latency)} if latency.is_file() else None)
    _remember_teacher(run, out, key)
    return out


def teacher_shard_dirs(run: Run, count: int) -> list[Path]:
    shards = storage("teacher-shards", run_teacher_key(run))
    return [shards / f"{i}-of-{count}" for i in range(1, count + 1)]


def compute_teacher_shard(run: Run, index: int, count: int, should_cancel=None) -> None:
    """Shard `index` of `count` of the run's BIGRec teacher (skipped if already there)."""
    from distill.teacher.bigrec import bigrec_teacher
    mine = teacher_shard_dirs(run, count)[index - 1]
    if not (mine / "shard.json").is_file():
        from distill.teacher.registry import bigrec_arguments
        spec = library_spec(run.config["teacher"])
        spec.pop("kind")
        model, adapter, options = bigrec_arguments(spec)
        bigrec_teacher(_dataset(run), mine, model, adapter, options, shard=(index, count),
                       cache=block_cache(run), should_cancel=should_cancel)


def merge_teacher_shards(run: Run, count: int) -> None:
    """Merge the shards into the library's cache entry and remember it as the run's teacher (the
    teacher stage then finds it complete)."""
    from distill.teacher.bigrec import merge_shards
    if (teacher_dir(run) / "teacher.json").is_file():
        return
    merged = merge_shards(_dataset(run), teacher_shard_dirs(run, count), None, cache=block_cache(run))
    _remember_teacher(run, Path(merged["path"]))


# ----------------------------------------------------------------------------- students

def seeds_of(run: Run) -> list[int]:
    """The run's seeds: `config["seeds"]` (from `seeds` / `seed_list`), else the train seed alone."""
    return list(run.config.get("seeds") or [train_config(run, False).seed])


def student_dirs(run: Run, role: str) -> list[Path]:
    """The run directories of a student role, one per seed in seed order (`distill.recipe.train_role`'s
    layout: `<role>/` for one seed, `<role>/seed-<s>/` for several). The first is the one served."""
    from distill.recipe import seed_dir
    seeds = seeds_of(run)
    out = run_dir(run) / role
    return [out] if len(seeds) == 1 else [seed_dir(out, s) for s in seeds]


def student_dir(run: Run, role: str) -> Path:
    """The run directory of the role's served student (its first seed's)."""
    return student_dirs(run, role)[0]


def _update_analysis(run: Run, **parts) -> None:
    """Merge `parts` into Run.analysis (the stages of one run run one at a time)."""
    current = Run.objects.filter(pk=run.pk).values_list("analysis", flat=True).first() or {}
    Run.objects.filter(pk=run.pk).update(analysis={**current, **parts})


def _train_stage(run: Run, reporter, role: str) -> Outcome:
    from distill.io import read_json
    from distill.recipe import seed_summary, train_role
    dirs = student_dirs(run, role)
    seeds = seeds_of(run)
    if not all((d / "metrics.json").is_file() for d in dirs):
        distilled = role == "distilled"
        config = train_config(run, distilled)
        reporter.message(f"{role}: training {config.student}" + (f" with lam={config.lam}" if distilled else "")
                         + (f" over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else ""))
        train_role(_dataset(run), config, teacher_dir(run) if distilled else None, run_dir(run) / role, seeds,
                   reporter.callbacks(role), log=reporter.message if len(seeds) > 1 else None)
    metrics = [read_json(d / "metrics.json") for d in dirs]
    summary = seed_summary(metrics)
    for split, values in summary["metrics"].items():
        _store_metrics(run, role, split, values)
    analysis = Run.objects.filter(pk=run.pk).values_list("analysis", flat=True).first() or {}
    per_seed = [{"seed": m["protocol"]["seed"], "val": m.get("val"), "test": m.get("test"), "lam": m.get("lam"),
                 "best_epoch": m.get("best_epoch"), "stopped_by": m.get("stopped_by"),
                 "epochs_run": m.get("epochs_run")} for m in metrics]
    _update_analysis(run, uncertainty={**analysis.get("uncertainty", {}), role: summary["uncertainty"]},
                     per_seed={**analysis.get("per_seed", {}), role: per_seed},
                     chosen={**analysis.get("chosen", {}), role: _chosen_entry(metrics)})
    for directory in dirs:
        _record_artifacts(run, role, directory)
    return COMPLETE


def stage_baseline(run: Run, reporter) -> Outcome:
    return _train_stage(run, reporter, "baseline")


def stage_distilled(run: Run, reporter) -> Outcome:
    return _train_stage(run, reporter, "distilled")


def stage_latency(run: Run, reporter) -> Outcome:
    from distill.evaluate import most_popular_metrics
    from distill.io import read_json
    from distill.latency import student_latency
    from distill.inference import TrainedStudent
    dataset = _dataset(run)
    reporter.message("latency: students on the test histories")
    students = {role: TrainedStudent.load(student_dir(run, role)).model for role in ("baseline", "distilled")}
    for role, model in students.items():
        result = student_latency(model, dataset.test)
        Latency.objects.update_or_create(run=run, role=role, defaults={
            "device": result["device"], "batch_size": result["batch_size"], "p50_ms": result["p50_ms"],
            "p95_ms": result["p95_ms"], "throughput": result["throughput"]})
    _record_overlap(run, dataset, students)
    _record_comparison(run, dataset)
    _record_report(run, dataset, students)
    teacher_latency = teacher_dir(run) / "latency.json"
    if teacher_latency.is_file():
        result = read_json(teacher_latency)
        Latency.objects.update_or_create(run=run, role="teacher", defaults={
            "device": result.get("device", ""), "batch_size": 1, "p50_ms": result["p50_ms"],
            "p95_ms": result["p95_ms"], "throughput": result.get("throughput")})
    for split in ("val", "test"):
        _store_metrics(run, "most_popular", split,
                       most_popular_metrics(dataset.train, dataset.split(split), dataset.num_items))
    return COMPLETE


def _record_overlap(run: Run, dataset, students: dict) -> None:
    """How much of the teacher's test top-20 each student ({role: model}) reproduces in its own top-20."""
    from safetensors.numpy import load_file

    from distill.evaluate import topk_overlap
    from distill.teacher.artifacts import RANKS_FILE
    ranks = teacher_dir(run) / RANKS_FILE
    if not ranks.is_file():
        return
    stored = load_file(str(ranks))
    teacher_ids = stored["test_ids"]
    overlap = {}
    for role, model in students.items():
        value = topk_overlap(model, dataset.test, teacher_ids, k=20, ranked=stored.get("test_ranked"))
        if not math.isnan(value):
            overlap[role] = round(value, 6)
    k = min(20, int(teacher_ids.shape[1])) if teacher_ids.ndim == 2 else 20
    Run.objects.filter(pk=run.pk).update(analysis={**Run.objects.get(pk=run.pk).analysis,
                                                   "overlap": {"k": k, **overlap}})


def _record_comparison(run: Run, dataset) -> None:
    """The paired test of the run's answer (`distill.recipe.compare_students`): per-user test
    NDCG@20 of the distilled students against the plain ones (each averaged over the run's seeds)
    and against the teacher when it kept 20 candidates, with a bootstrap CI of the relative gain
    and a Wilcoxon p-value, in Run.analysis["comparison"]."""
    from distill.recipe import compare_students
    from distill.teacher.artifacts import RANKS_FILE
    teacher = teacher_dir(run)
    comparison = compare_students(dataset, student_dirs(run, "distilled"), student_dirs(run, "baseline"),
                                  teacher if (teacher / RANKS_FILE).is_file() else None)
    _update_analysis(run, comparison=comparison)


def _record_report(run: Run, dataset, students: dict) -> None:
    """The reliability report (distill.report, docs/method.md §8) of the served students against
    the teacher's test lists, in Run.analysis["report"]."""
    from safetensors.numpy import load_file

    from distill.report import build_report, student_topk, teacher_confidence
    from distill.teacher.artifacts import RANKS_FILE
    k = min(20, dataset.num_items)   # a catalogue of fewer than 20 items: lists of all of them
    topk = {role: student_topk(model, dataset.test, k) for role, model in students.items()}
    confidence = None
    ranks = teacher_dir(run) / RANKS_FILE
    if ranks.is_file():
        lists = load_file(str(ranks))
        if "test_ids" in lists:
            topk["teacher"] = lists["test_ids"]
            confidence = teacher_confidence(lists)
    _update_analysis(run, report=build_report(dataset, topk, confidence, k=k))


def chosen(run: Run) -> dict:
    """What each student's training chose and why it stopped: {role: {lam, best_epoch, stopped_by,
    epochs_run, epochs, lam_auto}} (stopped_by: "patience" | "epochs", None for runs trained before
    it was kept). Over several seeds: best_epoch and epochs_run are lists (one per seed), and
    stopped_by is "epochs" if the cap ended any seed's training. Kept in Run.analysis by the student
    stages; read from the students' metrics.json for runs trained before that."""
    from distill.io import read_json
    out = dict(run.analysis.get("chosen") or {})
    for role in ("baseline", "distilled"):
        files = [d / "metrics.json" for d in student_dirs(run, role)]
        if role in out or not all(f.is_file() for f in files):
            continue
        out[role] = _chosen_entry([read_json(f) for f in files])
    return out


def _chosen_entry(runs: list[dict]) -> dict:
    """`chosen`'s entry of one role from its seeds' metrics.json."""
    stops = [m.get("stopped_by") for m in runs]
    entry = {"lam": runs[0].get("lam"), "best_epoch": runs[0].get("best_epoch"), "stopped_by": stops[0],
             "epochs_run": runs[0].get("epochs_run"), "epochs": runs[0].get("config", {}).get("epochs")}
    if len(runs) > 1:
        entry.update(best_epoch=[m.get("best_epoch") for m in runs], epochs_run=[m.get("epochs_run") for m in runs],
                     stopped_by=None if None in stops else "epochs" if "epochs" in stops else "patience")
    if runs[0].get("lam_auto"):
        entry["lam_auto"] = runs[0]["lam_auto"]
    return entry


# ----------------------------------------------------------------------------- rows

def _record_metrics(run: Run, role: str, file: Path) -> None:
    from distill.io import read_json
    metrics = read_json(file)
    for split in ("val", "test"):
        if isinstance(metrics.get(split), dict):
            _store_metrics(run, role, split, metrics[split])


def _store_metrics(run: Run, role: str, split: str, values: dict) -> None:
    for name, value in values.items():
        metric, _, k = name.partition("@")
        if not k.isdigit() or not isinstance(value, (int, float)):
            continue
        Metric.objects.update_or_create(run=run, role=role, split=split, metric=metric, k=int(k),
                                        defaults={"value": float(value)})


def _record_artifacts(run: Run, kind: str, directory: Path) -> None:
    from distill.io import sha256_file
    for file in sorted(p for p in directory.iterdir() if p.is_file()):
        Artifact.objects.update_or_create(run=run, kind=kind, path=str(file), defaults={
            "size": file.stat().st_size, "sha256": sha256_file(file)})


# ----------------------------------------------------------------------------- the table

# Teacher inference dominates on a GPU box; the latency measurement is short and needs no GPU.
STAGES: tuple[Stage, ...] = (
    Stage("teacher", "gpu", 0.3, stage_teacher),
    Stage("baseline", "gpu", 0.3, stage_baseline),
    Stage("distilled", "gpu", 0.35, stage_distilled),
    Stage("latency", "cpu", 0.05, stage_latency),
)
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)
BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}
FIRST = STAGE_NAMES[0]
# The queue of the teacher's shard tasks (a sharded teacher is BIGRec inference: the GPU).
SHARD_QUEUE = BY_NAME["teacher"].queue


def following(name: str) -> str | None:
    """The stage after `name`, None after the last one."""
    position = STAGE_NAMES.index(name)
    return STAGE_NAMES[position + 1] if position + 1 < len(STAGE_NAMES) else None


def progress_before(name: str) -> float:
    """The progress of a run that has finished every stage before `name`."""
    return sum(stage.weight for stage in STAGES[:STAGE_NAMES.index(name)])
