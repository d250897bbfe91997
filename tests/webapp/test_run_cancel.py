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


def test_cancel_stops_a_bigrec_teacher_mid_generation_within_10_s(worker, client, ml_dataset):
    """The attack: cancel answered 200 while a BIGRec teacher went on generating for minutes. Beam
    search checks the cancel flag between decoding steps, so the run is cancelled within 10 s."""
    import json
    import time

    from django.conf import settings

    from distill.teacher.tiny import build_tiny_llm
    model = settings.MODEL_ROOT / "tiny-ml100k"
    if not (model / "config.json").is_file():
        titles = json.loads((settings.STORAGE_ROOT / "datasets" / str(ml_dataset["id"]) / "prepared" /
                             "items.json").read_text())["titles"]
        build_tiny_llm(model, titles)
    teacher = {"kind": "bigrec", "backend": "hf", "model": "tiny-ml100k", "beams": 8, "batch": 64, "block": 100000,
               "max_new_tokens": 64, "latency_requests": 0}
    response = client.post("/api/runs/", {**RUN, "name": "llm", "teacher": teacher, "dataset": ml_dataset["id"]},
                           format="json")
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    wait_until(lambda: client.get(f"/api/runs/{run_id}/").json()["status"] == "running", 120,
               message=f"run {run_id} did not start")
    time.sleep(3)   # inside the first block's generation
    assert client.post(f"/api/runs/{run_id}/cancel/").status_code == 200
    asked = time.monotonic()
    body = poll_run(client, run_id, timeout=60)
    assert body["status"] == "cancelled" and "cancelled during teacher" in body["error"]
    assert time.monotonic() - asked < 10
