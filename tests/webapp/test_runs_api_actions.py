"""POST /api/runs/<id>/cancel/, retry/ and DELETE follow the run's state (no worker)."""

import pytest

pytestmark = pytest.mark.django_db


def test_cancel_retry_and_delete_follow_the_run_state(client, queued):
    path = f"/api/runs/{queued['id']}"
    assert client.post(f"{path}/retry/").status_code == 400          # queued: nothing to retry
    assert client.delete(f"{path}/").status_code == 400               # cancel first
    assert client.post(f"{path}/recommend/", {"history": ["1"]}, format="json").status_code == 409   # not succeeded
    cancelled = client.post(f"{path}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    assert client.post(f"{path}/cancel/").status_code == 400          # already finished
    assert client.post(f"{path}/retry/").json()["status"] == "queued"
    client.post(f"{path}/cancel/")
    assert client.delete(f"{path}/").status_code == 204
    assert client.get(f"{path}/").status_code == 404
