"""/api/schema/ is a valid OpenAPI document, /api/docs/ renders, /healthz answers."""

import pytest

pytestmark = pytest.mark.django_db


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
