"""One run as a chain of idempotent stages: teacher -> baseline -> distilled -> latency.

Each stage writes its artifacts (a directory that appears complete or not at all), then its rows
in Postgres with update_or_create; a stage whose artifacts exist is not computed again, so a
redelivered task or a resumed run repeats no finished work. The worker's tasks are thin wrappers
around `execute_stage`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from distill.errors import DistillError
from webapp.studio.models import Artifact, Dataset, EpochMetric, Latency, Metric, Run, RunEvent, TeacherCacheEntry

log = logging.getLogger(__name__)

STAGES = Run.STAGES
# Share of a run's progress bar each stage fills (teacher inference dominates on a GPU box).
WEIGHTS = {"teacher": 0.3, "baseline": 0.3, "distilled": 0.35, "latency": 0.05}
SEMANTIC_KEYS = {"k", "model", "exclude_history", "history"}
TITLES_KEYS = {"k", "dim"}
BIGREC_KEYS = {"k", "model", "adapter", "beams", "max_new_tokens", "batch", "block", "style", "exclude_history",
               "dtype", "tensor_parallel", "gpu_memory", "limit", "latency_requests", "max_empty", "shards"}
# Options that change how the teacher is computed, not what it computes (sharded and merged is
# byte-identical to unsharded): not part of the teacher cache key.
NOT_IN_KEY = {"shards"}
TEACHER_BACKENDS = {"semantic": SEMANTIC_KEYS, "titles": TITLES_KEYS, "hf": BIGREC_KEYS, "vllm": BIGREC_KEYS}


def storage(*parts) -> Path:
    return Path(settings.STORAGE_ROOT).joinpath(*map(str, parts))


def run_dir(run: Run) -> Path:
    return storage("runs", run.pk)


# ----------------------------------------------------------------------------- config

def validate_config(student: str, teacher: dict, distill: dict, train: dict) -> dict:
    """The run config, checked by the same schema as the command line; raises ValueError(field, message)."""
    from distill.config import TrainConfig
    from distill.errors import ConfigError
    for section, value in (("teacher", teacher), ("distill", distill), ("train", train)):
        if not isinstance(value, dict):
            raise ValueError(section, f"must be a JSON object of option names to values, got {type(value).__name__}")
    backend = teacher.get("backend", "semantic")
    if backend not in TEACHER_BACKENDS:
        raise ValueError("teacher", f"backend {backend!r} is not one of {', '.join(TEACHER_BACKENDS)}")
    unknown = sorted(set(teacher) - TEACHER_BACKENDS[backend] - {"backend"})
    if unknown:
        raise ValueError("teacher", f"unknown option(s) {', '.join(map(repr, unknown))} for backend {backend!r}; "
                                    f"known: {', '.join(sorted(TEACHER_BACKENDS[backend]))}")
    shards = teacher.get("shards", 1)
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= 64:
        raise ValueError("teacher", f"shards must be a whole number in 1..64, got {shards!r}")
    k = teacher.get("k", 20)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
        raise ValueError("teacher", f"k must be a whole number in 1..1000, got {k!r}")
    for section, options in (("distill", distill), ("train", train)):
        if "student" in options:
            raise ValueError(section, "set the student at the top level of the run, not inside " + section)
        try:
            TrainConfig.from_options(options)
        except ConfigError as exc:
            raise ValueError(section, str(exc)) from None
    try:
        TrainConfig.from_options({"student": student, **train, **distill})
    except ConfigError as exc:
        raise ValueError("student", str(exc)) from None
    return {"student": student, "teacher": {"backend": backend, **teacher}, "distill": distill, "train": train}


def train_config(run: Run, distilled: bool):
    from distill.config import TrainConfig
    config = run.config
    options = {"student": config["student"], **config.get("train", {})}
    if distilled:
        options = {**options, "lam": "auto", **config.get("distill", {})}
    return TrainConfig.from_options(options)


# ----------------------------------------------------------------------------- stage driver

class FanOut(Exception):
    """The teacher stage is split into `count` shards, each its own task on the gpu queue."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def execute_stage(run_id: int, stage: str, task_id: str = ""):
    """Run one stage of a run. Returns the next stage to enqueue, ("shards", n) when the teacher is
    to be computed by n shard tasks, or None when there is nothing to enqueue."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status in Run.FINISHED:
            return None
        if run.cancel_requested:
            _finish(run, Run.Status.CANCELLED, "cancelled before the stage started")
            return None
        fresh = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)
        if (run.status == Run.Status.RUNNING and run.task_id and run.task_id != task_id
                and run.heartbeat and run.heartbeat > fresh):
            return None  # a duplicate delivery while another worker is alive on this run
        if run.stage and stage != run.stage:
            return None  # a stale message for a stage this run has already passed
        if run.stage != stage:
            run.stage, run.attempts = stage, 0
        run.attempts += 1
        if run.attempts > settings.RUN_MAX_ATTEMPTS:
            _finish(run, Run.Status.FAILED,
                    f"stage {stage!r} was started {run.attempts - 1} times and never finished (the worker died or "
                    f"was killed each time, e.g. out of memory); giving up after RUN_MAX_ATTEMPTS="
                    f"{settings.RUN_MAX_ATTEMPTS}")
            return None
        run.status = Run.Status.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.heartbeat = timezone.now()
        run.task_id = task_id
        run.stage_message = f"{stage}: started (attempt {run.attempts})"
        run.stage_times = {**run.stage_times, stage: {"started": timezone.now().isoformat()}}
        run.save()
        event(run.pk, stage, run.stage_message)
    from distill.train import Cancelled
    try:
        STAGE_FUNCTIONS[stage](run, _Reporter(run, stage))
    except FanOut as fan:
        # The shards' tasks own the run now; the stage is entered again (attempt 1) after the merge.
        Run.objects.filter(pk=run_id).update(task_id="", attempts=0,
                                             stage_message=f"teacher: {fan.count} shards queued on the gpu queue")
        return ("shards", fan.count)
    except Cancelled:
        _finish(Run.objects.get(pk=run_id), Run.Status.CANCELLED, f"cancelled during {stage}")
        return None
    except DistillError as exc:
        _finish(Run.objects.get(pk=run_id), Run.Status.FAILED, f"{stage}: {exc}")
        return None
    except Exception as exc:  # a bug or an environment problem: keep the reason, log the traceback
        log.error("run %s stage %s failed:\n%s", run_id, stage, traceback.format_exc())
        _finish(Run.objects.get(pk=run_id), Run.Status.FAILED, f"{stage}: {type(exc).__name__}: {exc}")
        return None
    position = STAGES.index(stage)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.status in Run.FINISHED:
            return None
        run.progress = sum(WEIGHTS[s] for s in STAGES[:position + 1])
        run.heartbeat = timezone.now()
        _stage_finished(run, stage)
        if position + 1 == len(STAGES):
            _finish(run, Run.Status.SUCCEEDED, "")
            return None
        # No task owns the run until the next stage's task starts: its delivery is not a duplicate.
        run.stage, run.attempts, run.task_id = STAGES[position + 1], 0, ""
        run.save()
        return run.stage


def event(run_id: int, stage: str, message: str, level: str = "info") -> None:
    """One line of the run's log (the dashboard's log tail)."""
    RunEvent.objects.create(run_id=run_id, stage=stage, message=message[:2000], level=level)


def _stage_finished(run: Run, stage: str) -> None:
    times = dict(run.stage_times.get(stage) or {})
    now = timezone.now()
    times["finished"] = now.isoformat()
    if times.get("started"):
        from datetime import datetime
        times["seconds"] = round((now - datetime.fromisoformat(times["started"])).total_seconds(), 3)
    run.stage_times = {**run.stage_times, stage: times}
    event(run.pk, stage, f"{stage}: finished" + (f" in {times['seconds']:.1f} s" if "seconds" in times else ""))


def _finish(run: Run, status: str, error: str) -> None:
    if status == Run.Status.SUCCEEDED:
        event(run.pk, "", "run succeeded")
    else:
        event(run.pk, run.stage, f"run {status}: {error}" if error else f"run {status}",
              level="error" if status == Run.Status.FAILED else "info")
    run.status = status
    run.error = error if status != Run.Status.SUCCEEDED else ""
    run.finished_at = timezone.now()
    if status == Run.Status.SUCCEEDED:
        run.progress = 1.0
        run.stage_message = "done"
    run.save()


class _Reporter:
    """distill.train.Callbacks for a stage: per-epoch rows as they happen, progress and heartbeat,
    cooperative cancel (the database is read at most once a second)."""

    def __init__(self, run: Run, stage: str) -> None:
        self.run_id, self.stage = run.pk, stage
        self.base = sum(WEIGHTS[s] for s in STAGES[:STAGES.index(stage)])
        self._checked, self._cancel = 0.0, False

    def message(self, text: str) -> None:
        Run.objects.filter(pk=self.run_id).update(stage_message=text[:300], heartbeat=timezone.now())
        event(self.run_id, self.stage, text)

    def callbacks(self, role: str):
        from distill.train import Callbacks

        def on_epoch(record: dict) -> None:
            EpochMetric.objects.update_or_create(
                run_id=self.run_id, role=role, lam=record.get("lam"), epoch=record["epoch"],
                defaults={"loss": record.get("loss"), "seconds": record.get("seconds"),
                          "val": record.get("val") or {}})

        def on_progress(fraction: float) -> None:
            Run.objects.filter(pk=self.run_id).update(progress=self.base + WEIGHTS[self.stage] * fraction,
                                                      heartbeat=timezone.now())

        return Callbacks(on_epoch=on_epoch, on_progress=on_progress, should_cancel=self.should_cancel)

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            self._cancel = Run.objects.filter(pk=self.run_id, cancel_requested=True).exists()
        return self._cancel


# ----------------------------------------------------------------------------- stages

def _dataset(run: Run):
    from distill.data import PreparedDataset
    return PreparedDataset.load(run.dataset.prepared_dir)


def teacher_key(dataset: Dataset, teacher: dict) -> str:
    teacher = {key: value for key, value in teacher.items() if key not in NOT_IN_KEY}
    source = json.dumps({"dataset": dataset.content_hash, "teacher": teacher}, sort_keys=True)
    return hashlib.sha256(source.encode()).hexdigest()[:32]


def teacher_dir(run: Run) -> Path:
    return storage("teachers", teacher_key(run.dataset, run.config["teacher"]))


def stage_teacher(run: Run, reporter: _Reporter) -> None:
    from distill.evaluate import teacher_report
    from distill.train import Cancelled
    options = dict(run.config["teacher"])
    backend = options.pop("backend")
    out = teacher_dir(run)
    key = out.name
    if (out / "teacher.json").is_file():
        reporter.message("teacher: cached")
        TeacherCacheEntry.objects.filter(key=key).update(hits=F("hits") + 1)
    else:
        if reporter.should_cancel():
            raise Cancelled("run cancelled")
        if backend in ("hf", "vllm") and options.get("shards", 1) > 1:
            raise FanOut(options["shards"])
        dataset = _dataset(run)
        reporter.message(f"teacher: {backend} on train/val/test")
        if backend == "semantic":
            from distill.teacher.semantic import semantic_teacher
            artifacts = semantic_teacher(dataset, options.get("model"), k=options.get("k", 20),
                                         exclude_history=bool(options.get("exclude_history", False)),
                                         history=options.get("history", "mean"))
            artifacts.save(out, metrics=teacher_report(artifacts, dataset))
        elif backend == "titles":
            from distill.teacher import title_teacher
            artifacts = title_teacher(dataset, k=options.get("k", 20), dim=options.get("dim", 256))
            artifacts.save(out, metrics=teacher_report(artifacts, dataset))
        else:
            _bigrec(run, dataset, backend, options, out, reporter)
        TeacherCacheEntry.objects.update_or_create(key=key, defaults={
            "dataset_hash": run.dataset.content_hash, "config": run.config["teacher"], "path": str(out)})
    _record_metrics(run, "teacher", out / "metrics.json")
    _record_artifacts(run, "teacher", out)


def _bigrec_options(backend: str, options: dict):
    from distill.teacher.bigrec import BigRecOptions
    options = {key: value for key, value in options.items() if key not in ("model", "adapter", "shards")}
    return BigRecOptions(backend=backend, **options)


def run_teacher_shard(run_id: int, index: int, count: int) -> bool:
    """Compute shard `index` of `count` of a run's BIGRec teacher (skipped if already there). The
    shard task that finds every shard present merges them into the teacher's directory and
    returns True: the teacher stage is then enqueued again and finds its artifacts."""
    from distill.teacher.bigrec import bigrec_teacher, merge_shards
    run = Run.objects.select_related("dataset").filter(pk=run_id).first()
    if run is None or run.status in Run.FINISHED:
        return False
    if run.cancel_requested:
        _finish(run, Run.Status.CANCELLED, "cancelled during the teacher's shards")
        return False
    options = dict(run.config["teacher"])
    backend = options.pop("backend")
    out = teacher_dir(run)
    shards = storage("teacher-shards", out.name)
    mine = shards / f"{index}-of-{count}"
    done = [shards / f"{i}-of-{count}" for i in range(1, count + 1)]
    try:
        if not (mine / "shard.json").is_file():
            Run.objects.filter(pk=run_id).update(stage_message=f"teacher: shard {index}/{count}",
                                                 heartbeat=timezone.now())
            bigrec_teacher(_dataset(run), mine, options.get("model"), options.get("adapter"),
                           _bigrec_options(backend, options), shard=(index, count), cache=storage("teacher-blocks"))
        if not all((d / "shard.json").is_file() for d in done):
            return False
        with transaction.atomic():
            Run.objects.select_for_update().get(pk=run_id)  # one merger at a time
            if not (out / "teacher.json").is_file():
                merge_shards(_dataset(run), done, out, cache=storage("teacher-blocks"))
    except Exception as exc:  # a bad model, a bug: the run fails with the reason, like any stage
        if not isinstance(exc, DistillError):
            log.error("run %s teacher shard %s/%s failed:\n%s", run_id, index, count, traceback.format_exc())
        _finish(Run.objects.get(pk=run_id), Run.Status.FAILED, f"teacher shard {index}/{count}: {exc}")
        return False
    return True


def _bigrec(run, dataset, backend, options, out, reporter) -> None:
    from distill.teacher.bigrec import bigrec_teacher
    bigrec_teacher(dataset, out, options.get("model"), options.get("adapter"), _bigrec_options(backend, options),
                   cache=storage("teacher-blocks"), log=reporter.message)


def _train_stage(run: Run, reporter: _Reporter, role: str) -> None:
    from distill.teacher import TeacherArtifacts
    from distill.train import save_run, train
    out = run_dir(run) / role
    if not (out / "metrics.json").is_file():
        dataset = _dataset(run)
        distilled = role == "distilled"
        teacher = TeacherArtifacts.load(teacher_dir(run), dataset) if distilled else None
        config = train_config(run, distilled)
        reporter.message(f"{role}: training {config.student}" + (f" with lam={config.lam}" if distilled else ""))
        result = train(dataset, config, teacher, reporter.callbacks(role))
        save_run(result, dataset, out, teacher)
    _record_metrics(run, role, out / "metrics.json")
    _record_artifacts(run, role, out)


def stage_baseline(run: Run, reporter: _Reporter) -> None:
    _train_stage(run, reporter, "baseline")


def stage_distilled(run: Run, reporter: _Reporter) -> None:
    _train_stage(run, reporter, "distilled")


def stage_latency(run: Run, reporter: _Reporter) -> None:
    from distill.evaluate import most_popular_metrics
    from distill.io import read_json
    from distill.latency import student_latency
    from distill.train import TrainedStudent
    dataset = _dataset(run)
    reporter.message("latency: students on the test histories")
    students = {role: TrainedStudent.load(run_dir(run) / role).model for role in ("baseline", "distilled")}
    for role, model in students.items():
        result = student_latency(model, dataset.test)
        Latency.objects.update_or_create(run=run, role=role, defaults={
            "device": result["device"], "batch_size": result["batch_size"], "p50_ms": result["p50_ms"],
            "p95_ms": result["p95_ms"], "throughput": result["throughput"]})
    _record_overlap(run, dataset, students)
    teacher_latency = teacher_dir(run) / "latency.json"
    if teacher_latency.is_file():
        result = read_json(teacher_latency)
        Latency.objects.update_or_create(run=run, role="teacher", defaults={
            "device": result.get("device", ""), "batch_size": 1, "p50_ms": result["p50_ms"],
            "p95_ms": result["p95_ms"], "throughput": result.get("throughput")})
    for split in ("val", "test"):
        _store_metrics(run, "most_popular", split,
                       most_popular_metrics(dataset.train, dataset.split(split), dataset.num_items))


def _record_overlap(run: Run, dataset, students: dict) -> None:
    """How much of the teacher's test top-20 each student ({role: model}) reproduces in its own top-20."""
    import math

    from safetensors.numpy import load_file

    from distill.evaluate import topk_overlap
    from distill.teacher.artifacts import RANKS_FILE
    ranks = teacher_dir(run) / RANKS_FILE
    if not ranks.is_file():
        return
    teacher_ids = load_file(str(ranks))["test_ids"]
    overlap = {}
    for role, model in students.items():
        value = topk_overlap(model, dataset.test, teacher_ids, k=20)
        if not math.isnan(value):
            overlap[role] = round(value, 6)
    k = min(20, int(teacher_ids.shape[1])) if teacher_ids.ndim == 2 else 20
    Run.objects.filter(pk=run.pk).update(analysis={**Run.objects.get(pk=run.pk).analysis,
                                                   "overlap": {"k": k, **overlap}})


STAGE_FUNCTIONS = {"teacher": stage_teacher, "baseline": stage_baseline, "distilled": stage_distilled,
                   "latency": stage_latency}


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
