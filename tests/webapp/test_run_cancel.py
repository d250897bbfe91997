"""POST /api/runs/<id>/cancel/ stops a running run within an epoch; retry queues it again."""

import pytest

from webapp.studio.models import EpochMetric
from tests.factories import RUN, poll_run, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_cancel_stops_a_running_run_within_an_epoch(worker, client, ml_dataset):
    run_id = client.post("/api/runs/", {**RUN, "name": "cancelled", "train": {"epochs": 50},
                                        "dataset": ml_dataset["id"]}, format="json").json()["id"]
    wait_until(lambda: EpochMetric.objects.filter(run_id=run_id, role="baseline").exists(), 240,
               message=f"run {run_id} trained no baseline epoch")
    epochs_before = EpochMetric.objects.filter(run_id=run_id).count()
    assert client.post(f"/api/runs/{run_id}/cancel/").status_code == 200
    body = poll_run(client, run_id, timeout=60)
    assert body["status"] == "cancelled" and "cancelled during baseline" in body["error"]
    assert EpochMetric.objects.filter(run_id=run_id).count() <= epochs_before + 1
    retried = client.post(f"/api/runs/{run_id}/retry/").json()
    assert retried["status"] == "queued"
    client.post(f"/api/runs/{run_id}/cancel/")
    assert poll_run(client, run_id, timeout=120)["status"] == "cancelled"
