"""A broker restart mid-run loses no run: this test's own redis-server (a free port, no persistence)
is restarted under its own worker; the machine's shared Redis is never touched."""

import re

import pytest

from webapp.studio.models import Run
from tests.factories import RUN, poll_run, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_restarting_redis_mid_run_loses_no_run(own_broker, redis_server, client, ml_dataset):
    """Redis runs without persistence here: a restart drops every queued message. While the first
    run trains, the other run's next stage waits in the queue (one stage is one message, the worker
    runs one at a time) and is lost; the database still says the run is unfinished, and the
    worker's recovery loop sends it again."""
    first = client.post("/api/runs/", {**RUN, "name": "first", "train": {"epochs": 4},
                                       "dataset": ml_dataset["id"]}, format="json").json()["id"]
    second = client.post("/api/runs/", {**RUN, "name": "second", "dataset": ml_dataset["id"]},
                         format="json").json()["id"]
    wait_until(lambda: Run.objects.get(pk=first).stage in ("baseline", "distilled"), 240,
               message=lambda: f"run {first} not training yet: {Run.objects.get(pk=first).stage_message}")
    redis_server.restart()
    assert poll_run(client, first)["status"] == "succeeded"
    assert poll_run(client, second)["status"] == "succeeded"
    log = own_broker.log.read_text(errors="replace")
    assert "Connection to broker lost" in log          # the restart happened under the worker
    assert re.search(rf"run ({first}|{second}): no heartbeat", log)  # a lost stage came back from the database
