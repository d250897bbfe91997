"""Thin tasks: prepare an uploaded dataset (cpu queue), run one stage of a run (gpu queue for the
teacher and the students, cpu for latency), and recover runs whose worker or message was lost.

A run is a chain: each stage task enqueues the next one when it finishes. What is pending lives
in Postgres, not in the broker: a worker that starts (and every worker, every half
RUN_STALE_SECONDS) re-enqueues queued or running runs whose heartbeat has gone stale, so a
SIGKILLed worker or a Redis restart loses no run. A stage that keeps dying fails the run after
RUN_MAX_ATTEMPTS deliveries, with the reason stored.
"""

from __future__ import annotations

import logging
import shutil
import threading
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

log = logging.getLogger(__name__)
STAGE_QUEUE = {"teacher": "gpu", "baseline": "gpu", "distilled": "gpu", "latency": "cpu"}


def queue(kind: str) -> str:
    return settings.QUEUE_PREFIX + kind


def enqueue_stage(run_id: int, stage: str) -> None:
    from webapp.studio.models import Run
    Run.objects.filter(pk=run_id).update(heartbeat=timezone.now())
    run_stage.apply_async((run_id, stage), queue=queue(STAGE_QUEUE[stage]))


def enqueue_prepare(dataset_id: int) -> None:
    prepare_dataset.apply_async((dataset_id,), queue=queue("cpu"))


@shared_task(name="studio.run_stage", acks_late=True, reject_on_worker_lost=True)
def run_stage(run_id: int, stage: str) -> None:
    from webapp.studio.pipeline import execute_stage
    beat = _Heartbeat(run_id)
    beat.start()
    try:
        following = execute_stage(run_id, stage, run_stage.request.id or "")
    finally:
        beat.stop()
    if isinstance(following, tuple):  # ("shards", n): the teacher fans out over the gpu queue
        for index in range(1, following[1] + 1):
            teacher_shard.apply_async((run_id, index, following[1]), queue=queue("gpu"))
    elif following:
        enqueue_stage(run_id, following)


@shared_task(name="studio.teacher_shard", acks_late=True, reject_on_worker_lost=True)
def teacher_shard(run_id: int, index: int, count: int) -> None:
    """One shard of a run's BIGRec teacher; the last one to finish merges and resumes the run."""
    from webapp.studio.pipeline import run_teacher_shard
    beat = _Heartbeat(run_id)
    beat.start()
    try:
        merged = run_teacher_shard(run_id, index, count)
    finally:
        beat.stop()
    if merged:
        enqueue_stage(run_id, "teacher")


@shared_task(name="studio.prepare_dataset", acks_late=True, reject_on_worker_lost=True)
def prepare_dataset(dataset_id: int) -> None:
    from distill.data import PrepareOptions, prepare_dataset as prepare
    from distill.errors import DistillError
    from webapp.studio.models import Dataset
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None or dataset.status != Dataset.Status.PROCESSING:
        return
    upload = Path(dataset.upload_dir)
    out = Path(settings.STORAGE_ROOT) / "datasets" / str(dataset.pk) / "prepared"
    files = dataset.files
    try:
        if dataset.format == "movielens":
            source = str(upload)
        else:
            source = str(upload / files["interactions"])
        items = str(upload / files["items"]) if files.get("items") else None
        if not (out / "stats.json").is_file():
            prepare(dataset.format, source, out, items=items, options=PrepareOptions())
        from distill.data import PreparedDataset
        prepared = PreparedDataset.load(out)
    except DistillError as exc:
        shutil.rmtree(out, ignore_errors=True)
        Dataset.objects.filter(pk=dataset_id).update(status=Dataset.Status.FAILED, error=str(exc))
        return
    except Exception as exc:  # an unexpected reader failure: keep the reason for the user
        log.exception("dataset %s failed", dataset_id)
        shutil.rmtree(out, ignore_errors=True)
        Dataset.objects.filter(pk=dataset_id).update(status=Dataset.Status.FAILED,
                                                     error=f"{type(exc).__name__}: {exc}")
        return
    Dataset.objects.filter(pk=dataset_id).update(status=Dataset.Status.READY, stats=prepared.stats,
                                                 content_hash=prepared.content_hash, prepared_dir=str(out))


@shared_task(name="studio.recover_runs")
def recover_runs() -> int:
    return recover_stale_runs()


def recover_stale_runs() -> int:
    """Enqueue again every unfinished run whose heartbeat is older than RUN_STALE_SECONDS."""
    from webapp.studio.models import Dataset, Run
    cutoff = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)
    stale = Run.objects.filter(status__in=[Run.Status.QUEUED, Run.Status.RUNNING], heartbeat__lt=cutoff)
    count = 0
    for run in stale:
        stage = run.stage or Run.STAGES[0]
        log.warning("run %s: no heartbeat since %s, enqueueing stage %s again", run.pk, run.heartbeat, stage)
        # Back to queued: the stage's next delivery is then not mistaken for a duplicate.
        Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(status=Run.Status.QUEUED)
        enqueue_stage(run.pk, stage)
        count += 1
    cutoff_datasets = Dataset.objects.filter(status=Dataset.Status.PROCESSING, created_at__lt=cutoff)
    for dataset in cutoff_datasets:
        enqueue_prepare(dataset.pk)
    return count


class _Heartbeat:
    """Keeps a running stage's heartbeat fresh from a side thread, so 'stale' means 'worker gone'."""

    def __init__(self, run_id: int) -> None:
        self.run_id, self._stop = run_id, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        from webapp.studio.models import Run
        interval = max(1.0, settings.RUN_STALE_SECONDS / 5)
        while not self._stop.wait(interval):
            try:
                Run.objects.filter(pk=self.run_id, status=Run.Status.RUNNING).update(heartbeat=timezone.now())
            except Exception:  # the database is briefly away: the next beat tries again
                log.warning("heartbeat for run %s failed", self.run_id, exc_info=True)
            finally:
                close_old_connections()


_watchdog_stop = threading.Event()


@worker_ready.connect
def _start_watchdog(**_kwargs) -> None:
    """Recover lost runs now, then every half RUN_STALE_SECONDS, for as long as the worker lives."""
    def loop() -> None:
        while True:
            try:
                recover_stale_runs()
            except Exception:
                log.warning("run recovery failed; retrying", exc_info=True)
            finally:
                close_old_connections()
            if _watchdog_stop.wait(max(1.0, settings.RUN_STALE_SECONDS / 2)):
                return
    threading.Thread(target=loop, name="run-recovery", daemon=True).start()


@worker_shutdown.connect
def _stop_watchdog(**_kwargs) -> None:
    _watchdog_stop.set()
