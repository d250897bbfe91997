"""/api/runs/ is scoped to its owner: another user gets 404 on every run endpoint, no credentials 401."""

import pytest

pytestmark = pytest.mark.django_db


def test_runs_are_scoped_to_their_owner(queued, other_client, anonymous):
    for path in (f"/api/runs/{queued['id']}/", f"/api/runs/{queued['id']}/curves/",
                 f"/api/runs/{queued['id']}/export/?format=onnx"):
        assert other_client.get(path).status_code == 404
        assert anonymous.get(path).status_code == 401
    for path in (f"/api/runs/{queued['id']}/cancel/", f"/api/runs/{queued['id']}/retry/",
                 f"/api/runs/{queued['id']}/recommend/"):
        assert other_client.post(path, {}, format="json").status_code == 404
        assert anonymous.post(path, {}, format="json").status_code == 401
    assert other_client.get(f"/api/runs/compare/?ids={queued['id']}").status_code == 404
    assert other_client.delete(f"/api/runs/{queued['id']}/").status_code == 404
    assert other_client.get("/api/runs/").json()["results"] == []
