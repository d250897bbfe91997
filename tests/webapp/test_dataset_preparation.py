"""Preparation in the worker: a run on a dataset still processing waits and is started by the
preparation's end (or failed with it); a run on a failed dataset is refused; a preparation whose
worker died is enqueued again by recovery and ends ready or failed; one held by a live task is
not taken twice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.studio import services, tasks
from webapp.studio.models import Dataset, Run
from tests.factories import CSV_OK, GOOD, ITEMS_OK, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """The stage and preparation messages the service sends, instead of a broker."""
    messages = []
    monkeypatch.setattr(tasks, "enqueue_stage", lambda run_id, stage: messages.append(("stage", run_id, stage)))
    monkeypatch.setattr(tasks.prepare_dataset, "apply_async",
                        lambda args, queue: messages.append(("prepare", args[0], queue)))
    return messages


def _processing(client, interactions=CSV_OK) -> int:
    response = upload(client, name="tiny", fmt="csv", files=[("r.csv", interactions), ("m.csv", ITEMS_OK)])
    assert response.status_code == 202, response.content
    return response.json()["id"]


def _run(client, dataset_id):
    return client.post("/api/runs/", {**GOOD, "dataset": dataset_id}, format="json")


def test_the_upload_queues_its_preparation_on_the_cpu_queue(client, sent, django_capture_on_commit_callbacks, settings):
    with django_capture_on_commit_callbacks(execute=True):
        dataset_id = _processing(client)
    assert sent == [("prepare", dataset_id, settings.QUEUE_PREFIX + "cpu")]


def test_a_run_on_a_processing_dataset_waits_and_starts_when_it_is_ready(client, sent,
                                                                        django_capture_on_commit_callbacks):
    dataset_id = _processing(client)
    with django_capture_on_commit_callbacks(execute=True):
        response = _run(client, dataset_id)
    assert response.status_code == 201 and response.json()["status"] == "queued"
    assert "waiting for dataset" in response.json()["stage_message"]
    assert [m for m in sent if m[0] == "stage"] == []
    with django_capture_on_commit_callbacks(execute=True):
        services.prepare_stored(dataset_id)
    assert Dataset.objects.get(pk=dataset_id).status == "ready"
    assert ("stage", response.json()["id"], "teacher") in sent


def test_a_run_waiting_on_a_dataset_that_fails_fails_with_its_reason(client, sent):
    dataset_id = _processing(client, interactions=CSV_OK + b"1,2,yesterday\n")
    run_id = _run(client, dataset_id).json()["id"]
    services.prepare_stored(dataset_id)
    run = Run.objects.get(pk=run_id)
    assert run.status == "failed" and f"dataset {dataset_id} (tiny) failed to prepare" in run.error
    assert "yesterday" in run.error


def test_a_run_on_a_failed_dataset_is_refused(client, sent):
    dataset_id = _processing(client, interactions=CSV_OK + b"1,2,yesterday\n")
    services.prepare_stored(dataset_id)
    response = _run(client, dataset_id)
    assert response.status_code == 400 and "failed to prepare" in response.json()["dataset"][0]


def test_a_stage_message_for_a_run_whose_dataset_is_processing_leaves_it_queued(client, sent):
    from webapp.studio.pipeline import execute_stage
    run_id = _run(client, _processing(client)).json()["id"]
    assert execute_stage(run_id, "teacher", "task-1").done
    run = Run.objects.get(pk=run_id)
    assert run.status == "queued" and run.attempts == 0 and run.stage == ""


def test_recovery_enqueues_a_preparation_whose_worker_died(client, sent, settings):
    dataset_id = _processing(client)
    Dataset.objects.filter(pk=dataset_id).update(task_id="killed-task", attempts=1,
                                                 heartbeat=timezone.now() - timedelta(hours=1))
    tasks.recover_stale_runs()
    assert ("prepare", dataset_id, settings.QUEUE_PREFIX + "cpu") in sent
    services.prepare_stored(dataset_id, "next-task")
    dataset = Dataset.objects.get(pk=dataset_id)
    assert dataset.status == "ready" and dataset.attempts == 2


def test_a_preparation_held_by_a_live_task_is_not_taken_again(client, sent):
    dataset_id = _processing(client)
    Dataset.objects.filter(pk=dataset_id).update(task_id="live-task", heartbeat=timezone.now(), attempts=1)
    assert services.prepare_stored(dataset_id, "duplicate") is None
    assert Dataset.objects.get(pk=dataset_id).status == "processing"


def test_a_preparation_that_keeps_dying_fails_with_the_reason(client, sent, settings):
    dataset_id = _processing(client)
    Dataset.objects.filter(pk=dataset_id).update(task_id="killed", attempts=settings.RUN_MAX_ATTEMPTS,
                                                 heartbeat=timezone.now() - timedelta(hours=1))
    services.prepare_stored(dataset_id, "again")
    dataset = Dataset.objects.get(pk=dataset_id)
    assert dataset.status == "failed" and "never finished" in dataset.error
    assert f"RUN_MAX_ATTEMPTS={settings.RUN_MAX_ATTEMPTS}" in dataset.error


def test_the_dataset_page_shows_the_preparation_and_refreshes(client, web, sent):
    dataset_id = _processing(client)
    page = web.get(f"/datasets/{dataset_id}/").content.decode()
    assert 'http-equiv="refresh"' in page and "queued for preparation" in page
    services.prepare_stored(dataset_id)
    page = web.get(f"/datasets/{dataset_id}/").content.decode()
    assert 'http-equiv="refresh"' not in page and "r.csv" in page
