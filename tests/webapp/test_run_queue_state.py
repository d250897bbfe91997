"""What a run says while it waits, what recovery sends again, and whose teachers are reused: a run
between stages is `queued` at its next stage; recovery sends a stale queued run again only when
no message for it is waiting; a teacher is reused within one owner's runs only."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import prepared, upload
from webapp.studio.models import Run, TeacherCacheEntry

pytestmark = pytest.mark.django_db

TITLES = {"name": "titles", "student": "sasrec", "teacher": {"kind": "titles", "k": 20},
          "distill": {"lam": 0.5}, "train": {"epochs": 1}}


@pytest.fixture
def no_launch(monkeypatch):
    sent = []
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda *args: sent.append(args))
    return sent


def titles_run(api, dataset_id):
    response = api.post("/api/runs/", {**TITLES, "dataset": dataset_id}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.slow
def test_a_run_between_two_stages_is_queued_at_its_next_stage(client, ml_dataset, no_launch):
    from webapp.studio.pipeline import execute_stage
    run_id = titles_run(client, ml_dataset["id"])
    assert execute_stage(run_id, "teacher").next_stage == "baseline"
    body = client.get(f"/api/runs/{run_id}/").json()
    assert (body["status"], body["stage"]) == ("queued", "baseline")
    assert "waiting for a worker" in body["stage_message"]


@pytest.mark.slow
def test_cancelling_a_run_between_stages_cancels_it_at_once(client, ml_dataset, no_launch):
    from webapp.studio.pipeline import execute_stage
    run_id = titles_run(client, ml_dataset["id"])
    execute_stage(run_id, "teacher")
    assert client.post(f"/api/runs/{run_id}/cancel/").json()["status"] == "cancelled"


@pytest.mark.slow
def test_a_teacher_is_not_reused_across_owners(client, other_client, ml_dataset, no_launch):
    from webapp.studio.pipeline import execute_stage
    theirs = prepared(other_client, upload(other_client))
    mine = titles_run(client, ml_dataset["id"])
    execute_stage(mine, "teacher")
    again = titles_run(client, ml_dataset["id"])
    execute_stage(again, "teacher")
    other = titles_run(other_client, theirs["id"])
    execute_stage(other, "teacher")
    messages = {run_id: list(Run.objects.get(pk=run_id).events.values_list("message", flat=True))
                for run_id in (mine, again, other)}
    assert "teacher: cached" in messages[again]          # reused within one owner
    assert "teacher: cached" not in messages[other]      # computed again for another owner
    assert TeacherCacheEntry.objects.count() == 2


# ----------------------------------------------------------------------------- recovery and the broker

@pytest.fixture
def private_queues(settings):
    """Queues of this test alone on the session's Redis broker (no worker listens to them)."""
    from tests.factories import unit_tier
    if unit_tier():
        pytest.fail("needs the Redis broker: run it without STUDIO_TEST_DB=sqlite")
    import redis
    settings.QUEUE_PREFIX = f"noise-{uuid.uuid4().hex[:8]}-"
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    yield broker, settings.QUEUE_PREFIX + "gpu"
    for pattern in (settings.QUEUE_PREFIX + "*", "_kombu.binding." + settings.QUEUE_PREFIX + "*"):
        keys = list(broker.scan_iter(match=pattern))
        if keys:
            broker.delete(*keys)


def stale(run_id):
    Run.objects.filter(pk=run_id).update(heartbeat=timezone.now() - timedelta(hours=1))


@pytest.mark.integration
def test_recovery_leaves_a_queued_run_whose_message_is_waiting(queued, private_queues, monkeypatch):
    from webapp.studio import tasks
    monkeypatch.undo()   # send for real (the `queued` fixture created the run without a message)
    broker, gpu = private_queues
    tasks.enqueue_stage(queued["id"], "teacher")
    for _ in range(3):
        stale(queued["id"])
        tasks.recover_stale_runs()
    assert broker.llen(gpu) == 1


@pytest.mark.integration
def test_recovery_sends_a_queued_run_whose_message_was_lost(queued, private_queues, monkeypatch):
    from webapp.studio import tasks
    monkeypatch.undo()
    broker, gpu = private_queues
    tasks.enqueue_stage(queued["id"], "teacher")
    broker.delete(gpu)   # the broker lost it (a restart without persistence)
    stale(queued["id"])
    assert tasks.recover_stale_runs() == 1
    assert broker.llen(gpu) == 1
