"""The OpenAPI schema validates, and schemathesis, generating requests from it against the app,
finds no 500 on any operation (authenticated as a user who owns a dataset and a run)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from webapp.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def token(db, ml_dataset, client):
    """The user's token; requests go through the WSGI app in this process, inside the test's
    transaction, so (as Django's test client does) the per-request connection close is off."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield client._credentials["HTTP_AUTHORIZATION"]
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_500(case, token):
    response = case.call(headers={"Authorization": token})
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:500])
