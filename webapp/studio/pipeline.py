"""The stage driver: one run as a chain of idempotent stages (the table in `webapp.studio.stages`:
teacher -> baseline -> distilled -> latency). `execute_stage` runs one stage of a run and says
what comes next as a `StageResult`; the tasks (`webapp.studio.tasks`) are thin wrappers around it
(docs/architecture.md §3, §4).
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from distill.errors import Cancelled, DistillError
from webapp.studio import stages
from webapp.studio.models import EpochMetric, Run, RunEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageResult:
    """What to enqueue after a stage: the next stage, or `fan_out` shard tasks of the teacher, or
    nothing (`done`: the run finished, failed, was cancelled, or the message was a duplicate)."""
    next_stage: str | None = None
    fan_out: int = 0

    @property
    def done(self) -> bool:
        return self.next_stage is None and self.fan_out == 0


DONE = StageResult()


def execute_stage(run_id: int, stage: str, task_id: str = "") -> StageResult:
    """Run one stage of a run and return what to enqueue next."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status in Run.FINISHED:
            return DONE
        if run.cancel_requested:
            _finish(run, Run.Status.CANCELLED, "cancelled before the stage started")
            return DONE
        if run.waiting_for_id:
            return DONE  # a study's child waiting for its sibling's teacher: that sibling starts it
        dataset = run.dataset
        if dataset.status == dataset.Status.PROCESSING:
            return DONE  # the dataset's preparation starts the run when it ends
        if dataset.status == dataset.Status.FAILED:
            _finish(run, Run.Status.FAILED, f"dataset {dataset.pk} ({dataset.name}) failed to prepare: {dataset.error}")
            return DONE
        fresh = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)
        if (run.status == Run.Status.RUNNING and run.task_id and run.task_id != task_id
                and run.heartbeat and run.heartbeat > fresh):
            return DONE  # a duplicate delivery while another worker is alive on this run
        if run.stage and stage != run.stage:
            return DONE  # a stale message for a stage this run has already passed
        if run.stage != stage:
            run.stage, run.attempts = stage, 0
        run.attempts += 1
        if run.attempts > settings.RUN_MAX_ATTEMPTS:
            _finish(run, Run.Status.FAILED,
                    f"stage {stage!r} was started {run.attempts - 1} times and never finished (the worker died or "
                    f"was killed each time, e.g. out of memory); giving up after RUN_MAX_ATTEMPTS="
                    f"{settings.RUN_MAX_ATTEMPTS}")
            return DONE
        run.status = Run.Status.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.heartbeat = timezone.now()
        run.task_id = task_id
        run.stage_message = f"{stage}: started (attempt {run.attempts})"
        run.stage_times = {**run.stage_times, stage: {"started": timezone.now().isoformat()}}
        run.save()
        event(run.pk, stage, run.stage_message)
    try:
        outcome = stages.BY_NAME[stage].run(run, _Reporter(run, stage))
    except Cancelled:
        _finish(Run.objects.get(pk=run_id), Run.Status.CANCELLED, f"cancelled during {stage}")
        return DONE
    except DistillError as exc:
        _finish(Run.objects.get(pk=run_id), Run.Status.FAILED, f"{stage}: {exc}")
        return DONE
    except Exception as exc:  # a bug or an environment problem: keep the reason, log the traceback
        log.error("run %s stage %s failed:\n%s", run_id, stage, traceback.format_exc())
        _finish(Run.objects.get(pk=run_id), Run.Status.FAILED, f"{stage}: {type(exc).__name__}: {exc}")
        return DONE
    if outcome.fan_out:
        # The shards' tasks own the run now; the stage is entered again (attempt 1) after the merge.
        Run.objects.filter(pk=run_id).update(
            task_id="", attempts=0,
            stage_message=f"{stage}: {outcome.fan_out} shards queued on the {stages.SHARD_QUEUE} queue")
        return StageResult(fan_out=outcome.fan_out)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.status in Run.FINISHED:
            return DONE
        run.progress = stages.progress_before(stage) + stages.BY_NAME[stage].weight
        run.heartbeat = timezone.now()
        _stage_finished(run, stage)
        if stage == stages.FIRST and run.study_id:
            from webapp.studio.studies import release_followers
            release_followers(run, teacher_ready=True)   # the study's other children find it cached
        following = stages.following(stage)
        if following is None:
            _finish(run, Run.Status.SUCCEEDED, "")
            return DONE
        # Queued for the next stage: no task owns the run until that stage's task starts (so its
        # delivery is not a duplicate), and the run says it is waiting, not running.
        run.stage, run.attempts, run.task_id, run.status = following, 0, "", Run.Status.QUEUED
        run.stage_message = f"{following}: queued, waiting for a worker"
        run.save()
        return StageResult(next_stage=following)


def run_teacher_shard(run_id: int, index: int, count: int) -> bool:
    """Compute shard `index` of `count` of a run's BIGRec teacher (skipped if already there). The
    shard task that finds every shard present merges them into the teacher's directory and
    returns True: the teacher stage is then enqueued again and finds its artifacts."""
    run = Run.objects.select_related("dataset").filter(pk=run_id).first()
    if run is None or run.status in Run.FINISHED:
        return False
    if run.cancel_requested:
        _finish(run, Run.Status.CANCELLED, "cancelled during the teacher's shards")
        return False
    try:
        if not (stages.teacher_shard_dirs(run, count)[index - 1] / "shard.json").is_file():
            Run.objects.filter(pk=run_id).update(stage_message=f"teacher: shard {index}/{count}",
                                                 heartbeat=timezone.now())
            stages.compute_teacher_shard(run, index, count, should_cancel=_Reporter(run, "teacher").should_cancel)
        if not all((d / "shard.json").is_file() for d in stages.teacher_shard_dirs(run, count)):
            return False
        with transaction.atomic():
            Run.objects.select_for_update().get(pk=run_id)  # one merger at a time
            stages.merge_teacher_shards(run, count)
    except Cancelled:
        _finish(Run.objects.get(pk=run_id), Run.Status.CANCELLED, "cancelled during the teacher's shards")
        return False
    except Exception as exc:  # a bad model, a bug: the run fails with the reason, like any stage
        if not isinstance(exc, DistillError):
            log.error("run %s teacher shard %s/%s failed:\n%s", run_id, index, count, traceback.format_exc())
        _finish(Run.objects.get(pk=run_id), Run.Status.FAILED, f"teacher shard {index}/{count}: {exc}")
        return False
    return True


def event(run_id: int, stage: str, message: str, level: str = "info") -> None:
    """One line of the run's log (the dashboard's log tail)."""
    RunEvent.objects.create(run_id=run_id, stage=stage, message=message[:2000], level=level)


def _stage_finished(run: Run, stage: str) -> None:
    times = dict(run.stage_times.get(stage) or {})
    now = timezone.now()
    times["finished"] = now.isoformat()
    if times.get("started"):
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
    if run.study_id:
        from webapp.studio.studies import release_followers
        release_followers(run)


class _Reporter:
    """distill.train.Callbacks for a stage: per-epoch rows as they happen, progress and heartbeat,
    cooperative cancel (the database is read at most once a second)."""

    def __init__(self, run: Run, stage: str) -> None:
        self.run_id, self.stage = run.pk, stage
        self.base, self.weight = stages.progress_before(stage), stages.BY_NAME[stage].weight
        self._checked, self._cancel = 0.0, False

    def message(self, text: str) -> None:
        Run.objects.filter(pk=self.run_id).update(stage_message=text[:300], heartbeat=timezone.now())
        event(self.run_id, self.stage, text)

    def callbacks(self, role: str):
        from distill.train import Callbacks

        def on_epoch(record: dict) -> None:
            EpochMetric.objects.update_or_create(
                run_id=self.run_id, role=role, lam=record.get("lam"), seed=record.get("seed", 0), epoch=record["epoch"],
                defaults={"loss": record.get("loss"), "seconds": record.get("seconds"),
                          "val": record.get("val") or {}})

        def on_progress(fraction: float) -> None:
            Run.objects.filter(pk=self.run_id).update(progress=self.base + self.weight * fraction,
                                                      heartbeat=timezone.now())

        return Callbacks(on_epoch=on_epoch, on_progress=on_progress, should_cancel=self.should_cancel)

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            self._cancel = Run.objects.filter(pk=self.run_id, cancel_requested=True).exists()
        return self._cancel
