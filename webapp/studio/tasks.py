"""Thin tasks over the stage driver: run one stage of a run (on the queue the stage table names),
one shard of a sharded teacher, and recover runs whose worker or message was lost. The Celery app
(`worker/app.py`) finds them by autodiscovery; the web process sends them through the current app.

A run is a chain: each stage task enqueues the next one when it finishes. What is pending lives
in Postgres, not in the broker: a worker that starts (and every worker, every half
RUN_STALE_SECONDS: `worker/signals.py`) re-enqueues queued or running runs whose heartbeat has
gone stale, so a SIGKILLed worker or a Redis restart loses no run. A stage that keeps dying fails
the run after RUN_MAX_ATTEMPTS deliveries, with the reason stored.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from webapp.studio import stages

log = logging.getLogger(__name__)


def queue(kind: str) -> str:
    return settings.QUEUE_PREFIX + kind


def enqueue_stage(run_id: int, stage: str) -> None:
    from webapp.studio.models import Run
    Run.objects.filter(pk=run_id).update(heartbeat=timezone.now())
    run_stage.apply_async((run_id, stage), queue=queue(stages.BY_NAME[stage].queue))


@shared_task(name="studio.run_stage", acks_late=True, reject_on_worker_lost=True)
def run_stage(run_id: int, stage: str) -> None:
    from webapp.studio.pipeline import execute_stage
    beat = _Heartbeat(run_id)
    beat.start()
    try:
        result = execute_stage(run_id, stage, run_stage.request.id or "")
    finally:
        beat.stop()
    for index in range(1, result.fan_out + 1):  # the teacher fans out over the shard queue
        teacher_shard.apply_async((run_id, index, result.fan_out), queue=queue(stages.SHARD_QUEUE))
    if result.next_stage:
        enqueue_stage(run_id, result.next_stage)


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


def enqueue_prepare(dataset_id: int) -> None:
    from webapp.studio.models import Dataset
    Dataset.objects.filter(pk=dataset_id).update(heartbeat=timezone.now())
    prepare_dataset.apply_async((dataset_id,), queue=queue("cpu"))


@shared_task(name="studio.prepare_dataset", acks_late=True, reject_on_worker_lost=True)
def prepare_dataset(dataset_id: int) -> None:
    """Read an uploaded dataset's files and prepare it (ready or failed); see services.prepare_stored."""
    from webapp.studio.models import Dataset
    from webapp.studio.services import prepare_stored
    beat = _Heartbeat(dataset_id, Dataset, Dataset.Status.PROCESSING)
    beat.start()
    try:
        prepare_stored(dataset_id, prepare_dataset.request.id or "")
    finally:
        beat.stop()


@shared_task(name="studio.recover_runs")
def recover_runs() -> int:
    return recover_stale_runs()


def recover_stale_runs() -> int:
    """Enqueue again every unfinished run, and every dataset still processing, whose heartbeat is
    older than RUN_STALE_SECONDS. A run waiting for its dataset is left to the dataset, a study's
    child waiting for a sibling's teacher to that sibling."""
    from webapp.studio.models import Dataset, Run
    cutoff = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)
    count = 0
    pending = pending_tasks()
    for dataset in Dataset.objects.filter(status=Dataset.Status.PROCESSING, heartbeat__lt=cutoff):
        if not dataset.task_id and pending is not None and ("studio.prepare_dataset", dataset.pk) in pending:
            continue
        log.warning("dataset %s: no heartbeat since %s, enqueueing its preparation again", dataset.pk,
                    dataset.heartbeat)
        # No live task holds it: its next delivery is not mistaken for a duplicate.
        Dataset.objects.filter(pk=dataset.pk, status=Dataset.Status.PROCESSING).update(task_id="")
        enqueue_prepare(dataset.pk)
        count += 1
    # A study's child that waits for a sibling's teacher is started by that sibling.
    stale = Run.objects.filter(status__in=[Run.Status.QUEUED, Run.Status.RUNNING], heartbeat__lt=cutoff,
                               waiting_for__isnull=True).exclude(dataset__status=Dataset.Status.PROCESSING)
    for run in stale:
        stage = run.stage or stages.FIRST
        if run.status == Run.Status.QUEUED and pending is not None and ("studio.run_stage", run.pk) in pending:
            continue  # its message is still waiting for a worker: another one would be a duplicate
        log.warning("run %s: no heartbeat since %s, enqueueing stage %s again", run.pk, run.heartbeat, stage)
        # Back to queued: the stage's next delivery is then not mistaken for a duplicate.
        Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(status=Run.Status.QUEUED)
        enqueue_stage(run.pk, stage)
        count += 1
    return count


TASK_NAMES = ("studio.run_stage", "studio.prepare_dataset", "studio.teacher_shard")


def pending_tasks() -> set[tuple[str, int]] | None:
    """(task name, first argument) of every message waiting in this deployment's queues. None when
    the broker cannot be listed (then recovery goes by heartbeats alone). Messages a worker holds
    are not listed: with prefetch 1 a worker holds only the one it runs, whose run is `running`
    with a heartbeat (a dead worker's message must not keep its run from being sent again)."""
    from celery import current_app
    try:
        with current_app.connection_for_write() as connection:
            channel = connection.default_channel
            raw = _broker_messages(channel, [queue(kind) for kind in ("gpu", "cpu")])
    except Exception:  # a broker that is down: recovery sends again, as before
        log.warning("could not list the broker's pending messages", exc_info=True)
        return None
    if raw is None:
        return None
    found = set()
    for message in raw:
        task = _task_of(message)
        if task:
            found.add(task)
    return found


def _broker_messages(channel, queues: list[str]) -> list | None:
    """The raw waiting messages (JSON text) of `queues` on a Redis or filesystem broker, else None."""
    client = getattr(channel, "client", None)
    if client is not None and hasattr(client, "lrange"):   # Redis: one list per queue (and priority step)
        texts = []
        for name in queues:
            for key in client.scan_iter(match=name + "*", count=1000):
                key_text = key.decode() if isinstance(key, bytes) else key
                if key_text == name or key_text.startswith(name + "\x06\x16"):
                    texts.extend(client.lrange(key, 0, -1))
        return texts
    folder = getattr(channel, "data_folder_in", None)
    if folder:   # the filesystem broker: one file per waiting message, named ...<queue>.msg
        texts = []
        for path in Path(folder).glob("*.msg"):
            if any(path.name.endswith(f".{name}.msg") for name in queues):
                try:
                    texts.append(path.read_text())
                except OSError:
                    continue   # taken by a worker meanwhile
        return texts
    return None


def _task_of(text) -> tuple[str, int] | None:
    try:
        message = json.loads(text)
        task = message["headers"]["task"]
        if task not in TASK_NAMES:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return task, int(args[0])
    except (ValueError, TypeError, KeyError, IndexError):
        return None


class _Heartbeat:
    """Keeps a running stage's (or a preparation's) heartbeat fresh from a side thread, so 'stale'
    means 'worker gone'."""

    def __init__(self, run_id: int, model=None, status: str = "running") -> None:
        self.run_id, self._stop = run_id, threading.Event()
        self.model, self.status = model, status
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        from webapp.studio.models import Run
        model = self.model or Run
        interval = max(1.0, settings.RUN_STALE_SECONDS / 5)
        while not self._stop.wait(interval):
            try:
                model.objects.filter(pk=self.run_id, status=self.status).update(heartbeat=timezone.now())
            except Exception:  # the database is briefly away: the next beat tries again
                log.warning("heartbeat for run %s failed", self.run_id, exc_info=True)
            finally:
                close_old_connections()
