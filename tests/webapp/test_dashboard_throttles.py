"""The dashboard's forms spend the API's budgets (webapp/studio/throttles.py): once the API answers
429 for a user's uploads or runs, the upload and new-run forms answer 429 with a message and create
nothing, and forms that used the budget leave the API a 429. Anonymous requests count by the
client's address as `clientip.client_ip` sees it, not by a forged X-Forwarded-For."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import CSV_OK, GOOD, ITEMS_OK, finished_run, ready_dataset, run_form, upload
from webapp.studio.models import Dataset, Run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


@pytest.fixture(autouse=True)
def two_per_hour(monkeypatch):
    """Two POSTs an hour per scope (DRF reads the rates at class level); no broker."""
    from webapp.studio.throttles import UploadThrottle
    monkeypatch.setattr(UploadThrottle, "THROTTLE_RATES", {"uploads": "2/hour", "runs": "2/hour", "token": "2/hour"})
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda *args: None)


def api_upload(client, name):
    return upload(client, name, "csv", interactions=("i.csv", CSV_OK), items=("t.csv", ITEMS_OK))


def form_upload(web, name, **headers):
    return web.post("/datasets/upload/", {"name": name, "format": "csv",
                                          "interactions": SimpleUploadedFile("i.csv", CSV_OK),
                                          "items": SimpleUploadedFile("t.csv", ITEMS_OK)}, **headers)


def test_after_the_api_refuses_uploads_the_upload_form_creates_nothing(client, web):
    assert [api_upload(client, f"api{i}").status_code for i in range(3)] == [202, 202, 429]
    response = form_upload(web, "from the form")
    assert response.status_code == 429
    assert re.search(r"too many uploads: try again in \d+ s", response.content.decode())
    assert not Dataset.objects.filter(name="from the form").exists()


def test_a_throttled_upload_from_the_page_script_gets_the_message_as_json(client, web):
    for i in range(2):
        api_upload(client, f"api{i}")
    response = form_upload(web, "from the form", HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.status_code == 429 and response.json()["ok"] is False
    assert "too many uploads" in response.json()["errors"]["__all__"][0]


def test_uploads_from_the_form_spend_the_api_budget(client, web):
    assert [form_upload(web, f"form{i}").status_code for i in range(2)] == [302, 302]
    assert api_upload(client, "api").status_code == 429
    assert not Dataset.objects.filter(name="api").exists()


def test_after_the_api_refuses_runs_the_new_run_form_creates_nothing(client, web, user):
    dataset = ready_dataset(user)
    codes = [client.post("/api/runs/", {**GOOD, "name": f"api{i}", "dataset": dataset.pk}, format="json").status_code
             for i in range(3)]
    assert codes == [201, 201, 429]
    response = web.post("/runs/new/", run_form(user, dataset))
    assert response.status_code == 429
    assert re.search(r"too many run requests: try again in \d+ s", response.content.decode())
    assert not Run.objects.filter(name="from the form").exists()


def test_runs_from_the_form_spend_the_api_budget(client, web, user):
    dataset = ready_dataset(user)
    codes = [web.post("/runs/new/", run_form(user, dataset, name=f"form{i}")).status_code for i in range(2)]
    assert codes == [302, 302]
    response = client.post("/api/runs/", {**GOOD, "name": "api", "dataset": dataset.pk}, format="json")
    assert response.status_code == 429
    assert not Run.objects.filter(name="api").exists()


def test_a_throttled_retry_from_the_run_page_leaves_the_run_failed(client, web, user):
    dataset = ready_dataset(user)
    run = finished_run(user, dataset)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED)
    for i in range(2):
        client.post("/api/runs/", {**GOOD, "name": f"api{i}", "dataset": dataset.pk}, format="json")
    response = web.post(f"/runs/{run.pk}/retry/")
    assert response.status_code == 429 and "too many run requests" in response.content.decode()
    assert Run.objects.get(pk=run.pk).status == Run.Status.FAILED


def test_anonymous_requests_count_by_address_not_by_a_forged_forwarded_header(rf):
    from django.contrib.auth.models import AnonymousUser

    from webapp.studio.throttles import check_rate
    requests = [rf.post("/api/auth/token/", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
                for i in range(3)]
    for request in requests:
        request.user = AnonymousUser()
    assert [check_rate(request, "token") is None for request in requests] == [True, True, False]
