"""A run's BIGRec teacher may call an OpenAI-compatible server only where the operator allows it
(TEACHER_SERVER_URLS): no user can make a worker send requests to an address of their choosing."""

import pytest

from webapp.studio.models import Run
from tests.factories import ready_dataset

pytestmark = pytest.mark.django_db

TEACHER = {"kind": "bigrec", "backend": "openai", "url": "http://llm.internal:8000", "served_model": "smol",
           "api_key_env": "LLM_API_KEY"}


@pytest.fixture(autouse=True)
def unsent(monkeypatch):
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda *args: None)


def create(client, user, teacher):
    return client.post("/api/runs/", {"dataset": ready_dataset(user).pk, "name": "server", "student": "sasrec",
                                      "teacher": teacher, "train": {"epochs": 1}}, format="json")


def test_by_default_no_server_may_be_called(client, user):
    response = create(client, user, TEACHER)
    assert response.status_code == 400 and "TEACHER_SERVER_URLS" in str(response.json()["teacher"])
    assert not Run.objects.exists()


def test_an_allowed_server_is_accepted_and_the_key_stays_out_of_the_config(client, user, settings):
    settings.TEACHER_SERVER_URLS = ["http://llm.internal:8000"]
    response = create(client, user, TEACHER)
    assert response.status_code == 201, response.content
    assert response.json()["config"]["teacher"]["api_key_env"] == "LLM_API_KEY"


@pytest.mark.parametrize("url", ["http://llm.internal:8000.evil.example", "http://llm.internal:80001",
                                 "http://127.0.0.1:6379"])
def test_a_url_that_only_resembles_an_allowed_one_is_refused(client, user, settings, url):
    settings.TEACHER_SERVER_URLS = ["http://llm.internal:8000"]
    assert create(client, user, {**TEACHER, "url": url}).status_code == 400
