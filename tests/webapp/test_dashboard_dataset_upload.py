"""/datasets/upload/: several files and the prepare options in one form; a request-time problem
lands next to its field, a good upload leads to the dataset page, which shows the preparation,
then the reader's error or the statistics."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from webapp.studio.models import Dataset
from webapp.studio.services import prepare_stored
from tests.factories import ml100k_files

pytestmark = pytest.mark.django_db

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}


def test_the_form_offers_several_files_and_every_prepare_option(web):
    page = web.get("/datasets/upload/").content.decode()
    assert re.search(r'<input type="file" name="files"[^>]* multiple', page)
    for option in ("user_col", "item_col", "time_col", "title_col", "sep", "split", "kcore", "max_len"):
        assert f'name="{option}"' in page, option


def test_a_misnamed_movielens_file_is_reported_next_to_its_field(web):
    wrong = web.post("/datasets/upload/", {"name": "renamed", "format": "movielens",
                                           "interactions": SimpleUploadedFile("ratings.txt", b"1"),
                                           "items": SimpleUploadedFile("u.item", b"1")})
    assert wrong.status_code == 400
    assert re.search(r'id="id_interactions-error">ratings.txt: a MovieLens ratings file is named', wrong.content.decode())


def test_a_bad_option_is_reported_next_to_its_field(web):
    data_file, item_file = ml100k_files()
    response = web.post("/datasets/upload/", {"name": "x", "max_len": "0", "files": [
        SimpleUploadedFile("u.data", data_file.read_bytes()), SimpleUploadedFile("u.item", item_file.read_bytes())]},
        **XHR)
    assert response.json()["ok"] is False and "1..200" in response.json()["errors"]["max_len"][0]


def test_a_readers_error_shows_on_the_dataset_page(web, user):
    item_file = ml100k_files()[1]
    ok = web.post("/datasets/upload/", {"name": "broken", "files": [
        SimpleUploadedFile("u.data", b"196\t242\t3\n"), SimpleUploadedFile("u.item", item_file.read_bytes())]}, **XHR)
    assert ok.json()["ok"] is True
    dataset = Dataset.objects.get(name="broken", owner=user)
    prepare_stored(dataset.pk)
    page = web.get(ok.json()["url"]).content.decode()
    assert "failed" in page and re.search(r"u.data line 1: 3 fields where 4 are expected", page)


def test_several_files_are_recognised_prepared_and_shown(web, user):
    data_file, item_file = ml100k_files()
    ok = web.post("/datasets/upload/", {"name": "ml-100k", "files": [
        SimpleUploadedFile("u.data", data_file.read_bytes()), SimpleUploadedFile("u.item", item_file.read_bytes())]},
        **XHR)
    assert ok.status_code == 200 and ok.json()["ok"] is True, ok.content
    dataset = Dataset.objects.get(name="ml-100k", owner=user)
    assert ok.json()["url"] == f"/datasets/{dataset.pk}/" and dataset.status == "processing"
    assert "processing" in web.get("/datasets/").content.decode()
    prepare_stored(dataset.pk)
    page = web.get(f"/datasets/{dataset.pk}/").content.decode()
    assert ">943<" in page and ">1682<" in page   # users, items of ML-100k
    # sample rows: a history of titles and the next item's title with its id
    assert re.search(r"<td>[^<]*\(\d{4}\)[^<]*<span class=\"muted\">\(\d+\)</span></td>", page)
    assert re.search(r"<strong>\d+</strong><span>test instances</span>", page)
