"""/api/schema/ is a valid OpenAPI document, /healthz answers (the docs page: test_api_docs.py)."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_schema_is_a_valid_openapi_document(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    from openapi_spec_validator import validate
    validate(schema.json())  # raises on an invalid OpenAPI document
    paths = schema.json()["paths"]
    assert {"/api/runs/", "/api/runs/{id}/recommend/", "/api/datasets/", "/api/auth/token/"} <= set(paths)


def test_healthz_answers_without_a_login(anonymous):
    health = anonymous.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
