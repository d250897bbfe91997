"""Schemathesis, generating requests from the OpenAPI schema against the app, finds no 5xx on any
operation, authenticated as a user who owns a dataset and a run. Beside what the schema allows,
every query parameter, path id and body string or number may be swapped for what a database or
`int()` chokes on: NUL, digits `str.isdigit` takes but `int()` does not ("²"), non-ASCII digits
("٣"), numbers past 64 bits. (Lone surrogates, which only JSON can carry and schemathesis cannot
validate, are test_no_500.py's.)"""

import json

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.factories import CSV_OK, GOOD, ITEMS_OK, prepared, upload
from webapp.wsgi import application

HUGE = "9" * 30
NASTY_TEXT = ["\x00", "a\x00b", "queued\x00", "²", "2,²", "٣", "1,٣", HUGE, f"1,{HUGE}", "-1", "0", "bogus",
              "SASRec"]
nasty_query = st.sampled_from(NASTY_TEXT) | st.text(alphabet="\x00²٣09,aZ", min_size=1, max_size=6)
nasty_body = nasty_query | st.sampled_from([10**30, -(10**30), -1, 0])

# Generated from the code (no request): serving /api/schema/ needs a login.
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(SchemaGenerator().get_schema(public=True))))
schema.app = application
schema.config.phases.coverage.enabled = False   # hundreds of cases per operation: the budget goes to fuzzing


@schema.hook
def flatmap_query(context, query):
    """Every declared query parameter: what the schema generated, left out, or nasty text."""
    names = [parameter.name for parameter in context.operation.query]
    given = query or {}
    return st.fixed_dictionaries({}, optional={
        name: (st.just(given[name]) | nasty_query) if name in given else nasty_query for name in names})


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """An id of the user's own objects (1: SQLite hands them out from 1), the generated one, or nasty."""
    if not path_parameters:
        return st.just(path_parameters)
    return st.fixed_dictionaries({name: st.sampled_from([value, 1, 2]) | st.sampled_from(["²", "٣", HUGE])
                                  for name, value in path_parameters.items()})


def _nastier(value):
    """A strategy for a body value whose strings and numbers may each become nasty."""
    if isinstance(value, dict):
        return st.fixed_dictionaries({key: _nastier(item) for key, item in value.items()})
    if isinstance(value, list):
        return st.tuples(*map(_nastier, value)).map(list)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return st.just(value) | nasty_body
    return st.just(value)


# A valid body to spoil besides the generated one (the schema leaves the config's JSON untyped).
VALID_BODIES = {("POST", "/api/runs/"): {**GOOD, "dataset": 1, "teacher": {"backend": "hf", "model": "m"},
                                        "train": {"device": "cpu", "epochs": 3}}}


@schema.hook
def flatmap_body(context, body):
    """The body's strings and numbers, each as generated or nasty."""
    bodies = _nastier(body)
    valid = VALID_BODIES.get((context.operation.method.upper(), context.operation.path))
    return bodies | _nastier(valid) if valid and isinstance(body, dict) else bodies


@pytest.fixture
def token(db, fast_passwords, client, monkeypatch):
    """The token of a user who owns a (tiny, prepared) dataset and a queued run (a cheap password
    hash: the token endpoint checks a password on every example). Requests go through
    the WSGI app in this process, inside the test's transaction, so (as Django's test client does)
    the per-request connection close is off."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda *args: None)
    dataset = prepared(client, upload(client, "tiny", "csv", interactions=("i.csv", CSV_OK), items=("t.csv", ITEMS_OK)))
    assert client.post("/api/runs/", {**GOOD, "dataset": dataset["id"]}, format="json").status_code == 201
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield client._credentials["HTTP_AUTHORIZATION"]
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case, token):
    response = case.call(headers={"Authorization": token})
    assert response.status_code < 500, (case.method, case.formatted_path, case.query, case.body,
                                        response.status_code, response.text[:500])
