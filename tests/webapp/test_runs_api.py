"""/api/runs/ without a worker: validation (400 naming the field), owner scoping (404), auth (401),
filters, compare, cancel and retry state rules; the token endpoint, the schema and healthz."""

import pytest
from django.core.management import call_command

from webapp.studio.models import Run

pytestmark = pytest.mark.django_db
GOOD = {"name": "r", "student": "sasrec", "teacher": {"backend": "semantic", "k": 20},
        "distill": {"lam": "auto"}, "train": {"epochs": 3, "seed": 1}, "tags": ["nightly"]}


@pytest.fixture
def queued(client, ml_dataset, monkeypatch):
    """A run created over the API, its stage message not sent (no worker in these tests)."""
    monkeypatch.setattr("worker.tasks.enqueue_stage", lambda *args: None)
    response = client.post("/api/runs/", {**GOOD, "dataset": ml_dataset["id"]}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_stores_the_validated_config(queued):
    assert queued["status"] == "queued" and queued["config"]["train"] == {"epochs": 3, "seed": 1}
    assert queued["config"]["teacher"]["backend"] == "semantic" and queued["tags"] == ["nightly"]


@pytest.mark.parametrize("change, field, fragment", [
    ({"train": {"epocs": 3}}, "train", "did you mean 'epochs'"),
    ({"train": {"epochs": "many"}}, "train", "epochs"),
    ({"distill": {"lam": "often"}}, "distill", "lam"),
    ({"distill": {"student": "gru4rec"}}, "distill", "top level"),
    ({"teacher": {"backend": "gpt"}}, "teacher", "'gpt' is not one of"),
    ({"teacher": {"backend": "semantic", "beams": 4}}, "teacher", "unknown option(s) 'beams'"),
    ({"teacher": {"backend": "hf", "k": 0}}, "teacher", "k must be"),
    ({"student": "bert4rec"}, "student", "bert4rec"),
    ({"train": [1, 2]}, "train", ""),
    ({"tags": "nightly"}, "tags", ""),
    ({"name": ""}, "name", ""),
])
def test_bad_run_configs_get_400_naming_the_field(client, ml_dataset, change, field, fragment):
    response = client.post("/api/runs/", {**GOOD, "dataset": ml_dataset["id"], **change}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body and fragment in str(body[field]), body
    assert Run.objects.count() == 0


def test_a_dataset_of_another_user_cannot_be_used(other_client, ml_dataset):
    response = other_client.post("/api/runs/", {**GOOD, "dataset": ml_dataset["id"]}, format="json")
    assert response.status_code == 400 and "no dataset" in str(response.json()["dataset"])


def test_runs_are_scoped_to_their_owner(queued, other_client, anonymous):
    for path in (f"/api/runs/{queued['id']}/", f"/api/runs/{queued['id']}/curves/"):
        assert other_client.get(path).status_code == 404
        assert anonymous.get(path).status_code == 401
    for path in (f"/api/runs/{queued['id']}/cancel/", f"/api/runs/{queued['id']}/retry/",
                 f"/api/runs/{queued['id']}/recommend/"):
        assert other_client.post(path, {}, format="json").status_code == 404
        assert anonymous.post(path, {}, format="json").status_code == 401
    assert other_client.get(f"/api/runs/compare/?ids={queued['id']}").status_code == 404
    assert other_client.delete(f"/api/runs/{queued['id']}/").status_code == 404
    assert other_client.get("/api/runs/").json()["results"] == []


def test_filters_and_compare(client, queued, ml_dataset):
    assert [r["id"] for r in client.get("/api/runs/?tag=nightly").json()["results"]] == [queued["id"]]
    assert client.get("/api/runs/?tag=weekly").json()["results"] == []
    assert client.get("/api/runs/?status=queued&student=sasrec").json()["count"] == 1
    assert client.get(f"/api/runs/?dataset={ml_dataset['id']}").json()["count"] == 1
    assert client.get("/api/runs/?dataset=x").status_code == 400
    compared = client.get(f"/api/runs/compare/?ids={queued['id']}").json()["runs"]
    assert compared[0]["id"] == queued["id"] and compared[0]["metrics"] == {}
    assert client.get("/api/runs/compare/?ids=a,b").status_code == 400
    assert client.get("/api/runs/compare/?ids=999999").status_code == 404


def test_cancel_retry_and_delete_follow_the_run_state(client, queued):
    path = f"/api/runs/{queued['id']}"
    assert client.post(f"{path}/retry/").status_code == 400          # queued: nothing to retry
    assert client.delete(f"{path}/").status_code == 400               # cancel first
    assert client.post(f"{path}/recommend/", {"history": ["1"]}, format="json").status_code == 400
    cancelled = client.post(f"{path}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    assert client.post(f"{path}/cancel/").status_code == 400          # already finished
    assert client.post(f"{path}/retry/").json()["status"] == "queued"
    client.post(f"{path}/cancel/")
    assert client.delete(f"{path}/").status_code == 204
    assert client.get(f"{path}/").status_code == 404


def test_token_endpoint_and_create_api_user(user, anonymous, capsys):
    response = anonymous.post("/api/auth/token/", {"username": "alice", "password": "alice-password-123"},
                              format="json")
    assert response.status_code == 200 and len(response.json()["token"]) == 40
    wrong = anonymous.post("/api/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert wrong.status_code == 400 and "wrong username or password" in wrong.json()["detail"]
    assert anonymous.post("/api/auth/token/", {}, format="json").status_code == 400
    call_command("create_api_user", "carol")
    token = capsys.readouterr().out.strip()
    from rest_framework.test import APIClient
    carol = APIClient()
    carol.credentials(HTTP_AUTHORIZATION="Token " + token)
    assert carol.get("/api/runs/").status_code == 200


def test_schema_docs_and_healthz(client, anonymous):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    from openapi_spec_validator import validate
    validate(schema.json())  # raises on an invalid OpenAPI document
    paths = schema.json()["paths"]
    assert {"/api/runs/", "/api/runs/{id}/recommend/", "/api/datasets/", "/api/auth/token/"} <= set(paths)
    assert client.get("/api/docs/").status_code == 200
    health = anonymous.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_run_creation_is_throttled(client, ml_dataset, monkeypatch):
    from django.core.cache import cache

    from webapp.studio.api import UploadThrottle
    monkeypatch.setattr("worker.tasks.enqueue_stage", lambda *args: None)
    monkeypatch.setattr(UploadThrottle, "THROTTLE_RATES", {"runs": "2/hour", "uploads": "2/hour", "token": "2/hour"})
    cache.clear()
    codes = [client.post("/api/runs/", {**GOOD, "name": f"r{i}", "dataset": ml_dataset["id"]}, format="json").status_code
             for i in range(3)]
    assert codes == [201, 201, 429]
    assert client.get("/api/runs/").status_code == 200  # reading is not throttled
    cache.clear()
