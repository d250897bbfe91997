"""POST/GET /api/datasets/: an upload is validated and prepared on arrival, then listed; names are
unique per user."""

import pytest

from webapp.studio.models import Dataset
from tests.factories import CSV_OK, ITEMS_OK, upload

pytestmark = pytest.mark.django_db


def test_upload_movielens_is_prepared_and_listed(client):
    response = upload(client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "ready" and body["stats"]["users"] == 943 and body["stats"]["items"] == 1682
    assert len(body["content_hash"]) == 64
    listed = client.get("/api/datasets/").json()["results"]
    assert [d["id"] for d in listed] == [body["id"]]
    assert client.get(f"/api/datasets/{body['id']}/").json()["name"] == "ml"


def test_upload_csv_with_titles(client):
    response = upload(client, name="tiny", fmt="csv", interactions=("i.csv", CSV_OK), items=("t.csv", ITEMS_OK))
    assert response.status_code == 201, response.content
    assert response.json()["stats"]["items"] == 6


def test_duplicate_dataset_name_is_refused(client, ml_dataset):
    response = upload(client, name="ml", fmt="csv", interactions=("i.csv", CSV_OK), items=("t.csv", ITEMS_OK))
    assert response.status_code == 400 and "already have a dataset named 'ml'" in response.content.decode()
    assert Dataset.objects.count() == 1
