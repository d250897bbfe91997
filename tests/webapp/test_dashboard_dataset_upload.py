"""/datasets/upload/: the reader's error next to the file; a good upload leads to the dataset page."""

import re

import pytest

from webapp.studio.models import Dataset
from tests.factories import ml100k_files

pytestmark = pytest.mark.django_db


def test_dataset_upload_reports_the_readers_error_next_to_the_file_and_accepts_movielens(web, user):
    data_file, item_file = ml100k_files()
    from django.core.files.uploadedfile import SimpleUploadedFile
    bad_rows = b"196\t242\t3\n"  # no timestamp column
    response = web.post("/datasets/upload/", {
        "name": "broken", "format": "movielens", "interactions": SimpleUploadedFile("u.data", bad_rows),
        "items": SimpleUploadedFile("u.item", item_file.read_bytes())}, HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.status_code == 200 and response.json()["ok"] is False
    errors = response.json()["errors"]
    assert any("u.data" in message and "line 1" in message for messages in errors.values() for message in messages)
    assert not Dataset.objects.filter(name="broken").exists()
    wrong = web.post("/datasets/upload/", {"name": "renamed", "format": "movielens",
                                           "interactions": SimpleUploadedFile("ratings.txt", b"1"),
                                           "items": SimpleUploadedFile("u.item", b"1")})
    assert wrong.status_code == 400
    assert re.search(r'id="id_interactions-error">ratings.txt: a MovieLens ratings file is named', wrong.content.decode())
    ok = web.post("/datasets/upload/", {"name": "ml-100k", "format": "movielens",
                                        "interactions": SimpleUploadedFile("u.data", data_file.read_bytes()),
                                        "items": SimpleUploadedFile("u.item", item_file.read_bytes())},
                  HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert ok.status_code == 200, ok.content
    dataset = Dataset.objects.get(name="ml-100k", owner=user)
    assert ok.json()["url"] == f"/datasets/{dataset.pk}/"
    page = web.get(f"/datasets/{dataset.pk}/").content.decode()
    assert ">943<" in page and ">1682<" in page   # users, items of ML-100k
    # sample rows: a history of titles and the next item's title with its id
    assert re.search(r"<td>[^<]*\(\d{4}\)[^<]*<span class=\"muted\">\(\d+\)</span></td>", page)
    assert re.search(r"<strong>\d+</strong><span>test instances</span>", page)
    listing = web.get("/datasets/").content.decode()
    assert "ml-100k" in listing
