"""POST /api/runs/ is throttled per user; reading is not."""

import pytest

from tests.factories import GOOD

pytestmark = pytest.mark.django_db


def test_run_creation_is_throttled(client, ml_dataset, monkeypatch):
    from tests.factories import clear_cache
    from webapp.studio.api import UploadThrottle
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda *args: None)
    monkeypatch.setattr(UploadThrottle, "THROTTLE_RATES", {"runs": "2/hour", "uploads": "2/hour", "token": "2/hour"})
    clear_cache()
    codes = [client.post("/api/runs/", {**GOOD, "name": f"r{i}", "dataset": ml_dataset["id"]}, format="json").status_code
             for i in range(3)]
    assert codes == [201, 201, 429]
    assert client.get("/api/runs/").status_code == 200  # reading is not throttled
    clear_cache()
