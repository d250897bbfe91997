"""POST/GET /api/datasets/: an upload is stored at once (202, `processing`), prepared by the
worker's task into `ready`, then listed; files come in the repeated field `files` under their own
names, or in the one-file fields; every prepare option is a form field; names are unique per user."""

import pytest

from webapp.studio.models import Dataset
from tests.factories import CSV_OK, ITEMS_OK, prepared, upload

pytestmark = pytest.mark.django_db


def test_upload_is_accepted_as_processing_before_it_is_read(client):
    response = upload(client)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "processing" and body["stats"] == {}
    assert [f["name"] for f in body["files"]] == ["u.data", "u.item"]


def test_upload_movielens_is_prepared_and_listed(client):
    body = prepared(client, upload(client))
    assert body["status"] == "ready" and body["stats"]["users"] == 943 and body["stats"]["items"] == 1682
    assert body["progress"] == 1.0 and len(body["content_hash"]) == 64
    listed = client.get("/api/datasets/").json()["results"]
    assert [d["id"] for d in listed] == [body["id"]]
    assert client.get(f"/api/datasets/{body['id']}/").json()["name"] == "ml"


def test_upload_csv_with_titles_in_the_one_file_fields(client):
    body = prepared(client, upload(client, name="tiny", fmt="csv", interactions=("i.csv", CSV_OK),
                                   items=("t.csv", ITEMS_OK)))
    assert body["status"] == "ready" and body["stats"]["items"] == 6


def test_files_field_is_recognised_by_the_file_names_without_a_format(client):
    body = prepared(client, upload(client, name="tiny", fmt=None,
                                   files=[("reviews.csv", CSV_OK), ("meta.csv", ITEMS_OK)]))
    assert body["status"] == "ready", body["error"]
    assert body["format"] == "csv" and body["stats"]["users"] == 7


def test_column_names_are_form_fields(client):
    renamed = CSV_OK.replace(b"user_id,item_id,timestamp", b"reviewerID,asin,unixReviewTime")
    titles = ITEMS_OK.replace(b"item_id,title", b"asin,name")
    body = prepared(client, upload(client, name="amazon", fmt="csv", files=[("r.csv", renamed), ("m.csv", titles)],
                                   options={"user_col": "reviewerID", "item_col": "asin",
                                            "time_col": "unixReviewTime", "title_col": "name"}))
    assert body["status"] == "ready", body["error"]
    assert body["options"]["user_col"] == "reviewerID" and body["stats"]["users"] == 7


def test_split_and_window_options_shape_the_prepared_data(client):
    body = prepared(client, upload(client, name="loo", fmt="csv", files=[("r.csv", CSV_OK), ("m.csv", ITEMS_OK)],
                                   options={"split": "loo", "max_len": "3"}))
    assert body["stats"]["split"] == "loo" and body["stats"]["max_len"] == 3
    assert body["stats"]["instances"]["test"] == 7   # one test instance per user


def test_a_missing_column_names_the_form_field_not_a_command_line_flag(client):
    renamed = CSV_OK.replace(b"user_id", b"reviewerID")
    body = prepared(client, upload(client, name="amazon", fmt="csv", files=[("reviews.csv", renamed),
                                                                           ("meta.csv", ITEMS_OK)]))
    assert body["status"] == "failed"
    assert "reviews.csv" in body["error"] and "form field user_col" in body["error"]
    assert "--user-col" not in body["error"]


def test_duplicate_dataset_name_is_refused(client, ml_dataset):
    response = upload(client, name="ml", fmt="csv", interactions=("i.csv", CSV_OK), items=("t.csv", ITEMS_OK))
    assert response.status_code == 400 and "already have a dataset named 'ml'" in response.content.decode()
    assert Dataset.objects.count() == 1


def test_a_path_in_a_file_name_is_dropped_and_the_file_kept_inside_the_dataset(client, settings):
    body = prepared(client, upload(client, name="paths", fmt="csv",
                                   files=[("../../etc/reviews.csv", CSV_OK), ("..\\meta.csv", ITEMS_OK)]))
    assert body["status"] == "ready", body["error"]
    names = sorted(f["name"] for f in body["files"])
    assert names == ["meta.csv", "reviews.csv"]
    upload_dir = settings.STORAGE_ROOT / "datasets" / str(body["id"]) / "upload"
    assert sorted(p.name for p in upload_dir.iterdir()) == names
    assert not (settings.STORAGE_ROOT.parent / "etc").exists()
