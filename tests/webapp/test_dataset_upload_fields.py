"""POST /api/datasets/ with a bad field: a 400 naming the field and the fix, before anything is
stored (no row, no files)."""

import pytest

from webapp.studio.models import Dataset
from tests.factories import CSV_OK, ITEMS_OK, storage_entries, upload

pytestmark = pytest.mark.django_db

TWO_FILES = [("r.csv", CSV_OK), ("m.csv", ITEMS_OK)]


def _refused(client, field, fragment, **kwargs):
    before = storage_entries()
    response = upload(client, name="bad", fmt=kwargs.pop("fmt", "csv"), **kwargs)
    assert response.status_code == 400, response.content
    body = response.json()
    messages = body[field] if isinstance(body[field], list) else [body[field]]
    assert any(fragment in m for m in messages), body
    assert Dataset.objects.count() == 0 and storage_entries() == before
    return body


def test_an_unknown_field_lists_the_known_ones(client):
    body = _refused(client, "detail", "unknown field(s) 'usercol'", files=TWO_FILES, options={"usercol": "x"})
    assert "user_col" in body["detail"] and "max_len" in body["detail"]


def test_max_len_zero_is_refused_on_its_field(client):
    _refused(client, "max_len", "1..200", files=TWO_FILES, options={"max_len": "0"})


def test_an_unknown_split_is_refused_on_its_field(client):
    _refused(client, "split", "weird", files=TWO_FILES, options={"split": "weird"})


def test_a_text_value_in_a_file_field_is_refused(client):
    response = client.post("/api/datasets/", {"name": "x", "files": "not a file"}, format="multipart")
    assert response.status_code == 400 and "must be a file" in response.json()["files"][0]


def test_no_file_at_all_is_refused(client):
    _refused(client, "files", "no file uploaded", files=[])


def test_two_files_with_one_name_are_refused(client):
    _refused(client, "files", "two files are named 'r.csv'", files=[("r.csv", CSV_OK), ("r.csv", ITEMS_OK)])


def test_an_empty_file_is_refused_by_name(client):
    _refused(client, "files", "meta.csv: the file is empty", files=[("r.csv", CSV_OK), ("meta.csv", b"")])


def test_files_that_no_format_recognises_are_listed(client):
    _refused(client, "files", "notes.pdf", fmt=None, files=[("notes.pdf", b"%PDF-1.4 hello")])


def test_a_hidden_file_name_is_refused(client):
    _refused(client, "files", "'.env'", files=[*TWO_FILES, (".env", b"SECRET=1")])


def test_an_unknown_format_is_refused(client):
    _refused(client, "format", "parquet", fmt="parquet", files=TWO_FILES)
