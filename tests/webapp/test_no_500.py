"""No input is a 500 (DEBUG=0, as in production): ids spelt with digits `int()` refuses ("²") or
past 64 bits, NUL characters and lone surrogates in filters and in a run's config. What the
database cannot take is a 400 naming the field (API) or a message (dashboard filters); an unknown
status or student is a 400 that lists the valid ones."""

import json
import re

import pytest

from distill.config import STUDENTS
from tests.factories import GOOD, finished_run, ready_dataset, run_form
from webapp.studio.models import Run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

HUGE = "9" * 30
# As they appear in a URL: "²" (str.isdigit but not int()), "٣" (int() but not ASCII), NUL.
NASTY = ["%C2%B2", "2,%C2%B2", "%D9%A3", "%00", "a%00b", HUGE, f"1,{HUGE}", "-1", "bogus"]
DASHBOARD = ["/runs/?status={v}", "/runs/?dataset={v}", "/runs/?student={v}", "/runs/?teacher={v}", "/runs/?q={v}",
             "/runs/?tag={v}", "/runs/?sort={v}&page={v}", "/runs/compare/?ids={v}", "/runs/compare/?ids={run},{v}",
             "/runs/live/?ids={v}", "/runs/new/?from={v}", "/runs/new/?dataset={v}", "/datasets/?page={v}"]
API = ["/api/runs/?status={v}", "/api/runs/?dataset={v}", "/api/runs/?student={v}", "/api/runs/?teacher={v}",
       "/api/runs/?q={v}", "/api/runs/?tag={v}", "/api/runs/?limit={v}&offset={v}", "/api/runs/compare/?ids={v}",
       "/api/runs/compare/?ids={run},{v}", "/api/datasets/?limit={v}&offset={v}"]


@pytest.fixture
def run(user):
    return finished_run(user, ready_dataset(user))


@pytest.fixture
def no_broker(monkeypatch):
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda *args: None)


@pytest.mark.parametrize("page", DASHBOARD)
def test_no_dashboard_query_answers_500(web, run, page):
    for value in NASTY:
        url = page.format(v=value, run=run.pk)
        assert web.get(url).status_code < 500, url


@pytest.mark.parametrize("endpoint", API)
def test_no_api_query_answers_500(client, run, endpoint):
    for value in NASTY + ["999999999999999999999"]:
        url = endpoint.format(v=value, run=run.pk)
        assert client.get(url).status_code < 500, url


def test_an_unknown_status_filter_is_a_400_listing_the_statuses(client):
    response = client.get("/api/runs/?status=bogus")
    assert response.status_code == 400
    assert all(status in response.json()["status"] for status in Run.Status.values), response.json()


@pytest.mark.parametrize("query", ["teacher=%00", "q=a%00b"])
def test_a_nul_in_a_text_filter_is_a_400_naming_it(client, query):
    response = client.get(f"/api/runs/?{query}")
    assert response.status_code == 400 and "NUL" in str(response.json()[query.split("=")[0]])


def test_a_run_id_past_64_bits_is_a_400(client):
    assert client.get(f"/api/runs/compare/?ids={HUGE}").status_code == 400


def test_an_unknown_status_filter_on_the_dashboard_is_ignored_with_a_message(web, run):
    page = web.get("/runs/?status=bogus").content.decode()
    assert "The status filter is ignored: unknown status" in page and f"/runs/{run.pk}/" in page


def test_a_nul_in_a_dashboard_filter_is_ignored_with_a_message(web, run):
    page = web.get("/runs/?tag=a%00b").content.decode()
    assert "The tag filter is ignored: must not contain a NUL character" in page and f"/runs/{run.pk}/" in page


@pytest.mark.parametrize("change, field", [
    ({"teacher": {"backend": "hf", "model": "a\x00b"}}, "teacher"),
    ({"teacher": {"backend": "semantic", "history": "mean\x00"}}, "teacher"),
    ({"train": {"device": "cu\x00da"}}, "train"),
    ({"distill": {"lam": "auto\x00"}}, "distill"),
    ({"name": "a\x00b"}, "name"),
    ({"tags": ["ok", "a\x00b"]}, "tags"),
])
def test_a_nul_in_a_run_string_is_a_400_naming_the_field(client, user, no_broker, change, field):
    dataset = ready_dataset(user)
    response = client.post("/api/runs/", {**GOOD, "dataset": dataset.pk, **change}, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not Run.objects.exists()


@pytest.mark.parametrize("body, field", [
    ('"teacher": {"backend": "hf", "model": "a\\ud800b"}', "teacher"),
    ('"train": {"device": "\\udc00"}', "train"),
    ('"tags": ["\\ud800"]', "tags"),
    ('"student": "\\ud800"', "student"),
])
def test_a_lone_surrogate_in_a_run_is_a_400_naming_the_field(client, user, no_broker, body, field):
    dataset = ready_dataset(user)
    raw = '{"name": "r", "dataset": %d, %s}' % (dataset.pk, body)
    response = client.post("/api/runs/", raw, content_type="application/json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not Run.objects.exists()


def test_an_unknown_student_is_a_400_listing_the_students(client, user):
    dataset = ready_dataset(user)
    response = client.post("/api/runs/", {**GOOD, "dataset": dataset.pk, "student": "bert4rec"}, format="json")
    assert response.status_code == 400
    message = str(response.json()["student"])
    assert "bert4rec" in message and all(student in message for student in STUDENTS), message


def test_the_student_is_read_in_any_letter_case(client, user, no_broker):
    dataset = ready_dataset(user)
    response = client.post("/api/runs/", {**GOOD, "dataset": dataset.pk, "student": "SASRec"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["config"]["student"] == "sasrec"


def test_a_dataset_id_past_64_bits_is_a_400(client, no_broker):
    response = client.post("/api/runs/", {**GOOD, "dataset": int(HUGE)}, format="json")
    assert response.status_code == 400 and "dataset" in response.json()


def test_the_new_run_form_reads_the_student_in_any_letter_case(web, user, no_broker):
    response = web.post("/runs/new/", run_form(user, ready_dataset(user), student="SASRec"))
    assert response.status_code == 302
    assert Run.objects.get(name="from the form").config["student"] == "sasrec"


def test_the_new_run_form_lists_the_students_for_an_unknown_one(web, user, no_broker):
    response = web.post("/runs/new/", run_form(user, ready_dataset(user), student="bert4rec"))
    assert response.status_code == 400
    error = re.search(r'id="id_student-error">([^<]+)<', response.content.decode())
    assert error and all(student in error.group(1) for student in STUDENTS)
    assert not Run.objects.exists()


@pytest.mark.parametrize("field", ["name", "tags", "teacher_model", "train__device"])
def test_the_new_run_form_refuses_a_nul_next_to_the_field(web, user, no_broker, field):
    response = web.post("/runs/new/", run_form(user, ready_dataset(user), teacher_backend="hf", **{field: "a\x00b"}))
    assert response.status_code == 400
    assert re.search(rf'id="id_{field}-error">', response.content.decode())
    assert not Run.objects.exists()


@pytest.mark.parametrize("extra", [{"history": "mean\x00"}, {"history": "\ud800"}])
def test_the_new_run_form_refuses_a_nul_or_lone_surrogate_in_the_teacher_options(web, user, no_broker, extra):
    response = web.post("/runs/new/", run_form(user, ready_dataset(user), teacher_extra=json.dumps(extra)))
    assert response.status_code == 400
    assert re.search(r'id="id_teacher_extra-error">history: must', response.content.decode())
    assert not Run.objects.exists()


@pytest.mark.parametrize("path, body", [
    ("/api/runs/{run}/recommend/", '{"history": ["\\ud800"], "k": 1}'),
    ("/api/datasets/", '{"name": "\\ud800", "format": "\\ud800"}'),
    ("/api/auth/token/", '{"username": "alice", "password": "\\ud800"}'),
    ("/api/auth/token/", '{"username": "\\ud800", "password": "x"}'),
])
def test_a_lone_surrogate_in_a_json_body_is_a_400(client, run, path, body):
    response = client.post(path.format(run=run.pk), body, content_type="application/json")
    assert response.status_code == 400, response.content
