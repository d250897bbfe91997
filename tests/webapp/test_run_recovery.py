"""A worker SIGKILLed mid-stage: the next worker resumes the run from the database without redoing
finished stages; a stage that keeps killing its worker fails the run after RUN_MAX_ATTEMPTS."""

import pytest

from webapp.studio.models import EpochMetric, Metric, Run
from tests.factories import RUN, poll_run, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_killed_worker_is_replaced_and_the_run_finishes_without_redoing_stages(worker, client, ml_dataset):
    run_id = client.post("/api/runs/", {**RUN, "name": "killed", "train": {"epochs": 6},
                                        "dataset": ml_dataset["id"]}, format="json").json()["id"]
    wait_until(lambda: Run.objects.get(pk=run_id).stage == "baseline"
               and EpochMetric.objects.filter(run_id=run_id).exists(), 240,
               message=lambda: f"no baseline epoch yet: {Run.objects.get(pk=run_id).stage_message}")
    worker.kill()  # SIGKILL mid-training of the baseline
    teacher_rows = Metric.objects.filter(run_id=run_id, role="teacher").count()
    worker.start()
    body = poll_run(client, run_id)
    assert body["status"] == "succeeded", body["error"]
    assert Metric.objects.filter(run_id=run_id, role="teacher").count() == teacher_rows
    log = worker.log.read_text()
    assert f"run {run_id}: no heartbeat" in log  # recovered from the database, not from the broker
    # The teacher ran once; the killed stage (baseline) was entered a second time, then the rest.
    starts = [m for m in Run.objects.get(pk=run_id).events.values_list("message", flat=True) if ": started (" in m]
    assert [m for m in starts if m.startswith("teacher:")] == ["teacher: started (attempt 1)"], starts
    assert [m for m in starts if m.startswith("baseline:")] == ["baseline: started (attempt 1)",
                                                                 "baseline: started (attempt 2)"], starts
    assert "distilled: started (attempt 1)" in starts, starts


def test_a_stage_that_keeps_dying_fails_the_run_with_the_reason(worker, client, ml_dataset):
    """The worker is SIGKILLed every time it works on the run: after RUN_MAX_ATTEMPTS (2 here)
    deliveries of the same stage the run fails, saying why, instead of looping forever."""
    run_id = client.post("/api/runs/", {**RUN, "name": "doomed", "train": {"epochs": 200},
                                        "dataset": ml_dataset["id"]}, format="json").json()["id"]
    for kills in range(2):
        wait_until(lambda: (run := Run.objects.get(pk=run_id)).stage == "baseline" and run.attempts == kills + 1
                   and EpochMetric.objects.filter(run_id=run_id, role="baseline").exists(), 300,
                   message=lambda: f"attempt {kills + 1} of baseline not training: "
                                   f"{Run.objects.get(pk=run_id).stage_message}")
        worker.kill()
        EpochMetric.objects.filter(run_id=run_id).delete()
        worker.start()
    body = poll_run(client, run_id, timeout=120)
    assert body["status"] == "failed"
    assert "stage 'baseline' was started 2 times and never finished" in body["error"]
    assert "RUN_MAX_ATTEMPTS=2" in body["error"]
