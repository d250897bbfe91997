"""POST/GET/DELETE /api/datasets/: uploads are validated and prepared on arrival; bad ones get 400
with a message naming the problem, and leave no files and no rows behind."""

import pickle

import pytest
from django.conf import settings

from webapp.studio.models import Dataset

from conftest import ml100k_files, upload

pytestmark = pytest.mark.django_db

CSV_OK = b"user_id,item_id,timestamp\n" + b"".join(
    f"{u},{i},{u * 100 + i}\n".encode() for u in range(1, 8) for i in range(1, 7))
ITEMS_OK = b"item_id,title\n" + b"".join(f"{i},Film number {i}\n".encode() for i in range(1, 7))


def storage_entries():
    root = settings.STORAGE_ROOT / "datasets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


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


def test_another_user_gets_404_and_no_credentials_401(client, other_client, anonymous, ml_dataset):
    path = f"/api/datasets/{ml_dataset['id']}/"
    assert other_client.get(path).status_code == 404
    assert other_client.delete(path).status_code == 404
    assert other_client.get("/api/datasets/").json()["results"] == []
    assert anonymous.get(path).status_code == 401
    assert anonymous.get("/api/datasets/").status_code == 401
    assert upload(anonymous).status_code == 401


def test_delete_removes_the_row_and_the_files(client, ml_dataset):
    assert str(ml_dataset["id"]) in storage_entries()
    assert client.delete(f"/api/datasets/{ml_dataset['id']}/").status_code == 204
    assert str(ml_dataset["id"]) not in storage_entries()
    assert client.get(f"/api/datasets/{ml_dataset['id']}/").status_code == 404


u_data, u_item = ml100k_files()
BAD = {
    "empty interactions": (dict(fmt="csv", interactions=("i.csv", b""), items=("t.csv", ITEMS_OK)), "empty"),
    "only a header": (dict(fmt="csv", interactions=("i.csv", b"user_id,item_id,timestamp\n"),
                           items=("t.csv", ITEMS_OK)), "i"),
    "wrong columns": (dict(fmt="csv", interactions=("i.csv", b"a,b,c\n1,2,3\n"), items=("t.csv", ITEMS_OK)),
                      "user_id"),
    "garbage bytes": (dict(fmt="csv", interactions=("i.csv", bytes(range(256)) * 40), items=("t.csv", ITEMS_OK)),
                      "text"),
    "a pickle": (dict(fmt="csv", interactions=("i.csv", pickle.dumps({"a": 1})), items=("t.csv", ITEMS_OK)),
                 "pickle"),
    "a zip archive (bomb or not)": (dict(fmt="csv", interactions=("i.csv", b"PK\x03\x04" + b"\0" * 100),
                                         items=("t.csv", ITEMS_OK)), "archive"),
    "gzip": (dict(fmt="csv", interactions=("i.csv", b"\x1f\x8b\x08" + b"\0" * 50), items=("t.csv", ITEMS_OK)), ""),
    "over the size limit": (dict(fmt="csv", interactions=("i.csv", b"1,2,3\n" * (1024 * 1024)),
                                 items=("t.csv", ITEMS_OK)), "upload limit of 5 MB"),
    "missing items file": (dict(fmt="csv", interactions=("i.csv", CSV_OK)), "needs this file"),
    "an item without title": (dict(fmt="csv", interactions=("i.csv", CSV_OK + b"1,99,5000\n"),
                                   items=("t.csv", ITEMS_OK)), "'99'"),
    "ids that don't match between files": (dict(fmt="csv", interactions=("i.csv", CSV_OK.replace(b",1,", b",7,")),
                                                items=("t.csv", ITEMS_OK)), "no title"),
    "non-numeric timestamp": (dict(fmt="csv", interactions=("i.csv", CSV_OK + b"1,2,yesterday\n"),
                                   items=("t.csv", ITEMS_OK)), "yesterday"),
    "ragged rows": (dict(fmt="csv", interactions=("i.csv", CSV_OK + b"1,2\n"), items=("t.csv", ITEMS_OK)), "line"),
    "unknown format": (dict(fmt="parquet", interactions=("i.csv", CSV_OK), items=("t.csv", ITEMS_OK)), "parquet"),
    "movielens file misnamed": (dict(fmt="movielens", interactions=("ratings.txt", u_data.read_bytes()),
                                     items=("u.item", u_item.read_bytes())), "ratings.txt"),
    "movielens pair mismatched": (dict(fmt="movielens", interactions=("u.data", u_data.read_bytes()),
                                       items=("movies.dat", u_item.read_bytes())), "u.item"),
    "movielens with csv content": (dict(fmt="movielens", interactions=("u.data", CSV_OK),
                                        items=("u.item", u_item.read_bytes())), "u.data"),
    "a file where none belongs": (dict(fmt="csv", interactions=("i.csv", CSV_OK), items=("t.csv", ITEMS_OK),
                                       train=("x.csv", CSV_OK)), "takes no train file"),
    "recbole without header types": (dict(fmt="recbole", interactions=("x.inter", CSV_OK),
                                          items=("x.item", ITEMS_OK)), "no field"),
    "a duplicate title row": (dict(fmt="csv", interactions=("i.csv", CSV_OK),
                                   items=("t.csv", ITEMS_OK + b"3,Another title\n")), "3"),
    "too few interactions for a split": (dict(fmt="csv", interactions=("i.csv", b"user_id,item_id,timestamp\n1,1,1\n"),
                                              items=("t.csv", ITEMS_OK)), ""),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_uploads_get_400_with_a_message_and_leave_nothing_behind(client, case):
    files, fragment = BAD[case]
    files = dict(files)
    fmt = files.pop("fmt")
    before = storage_entries()
    response = upload(client, name=f"bad {case}", fmt=fmt, **files)
    assert response.status_code == 400, (case, response.status_code, response.content[:300])
    text = response.content.decode()
    assert fragment in text, (case, text[:500])
    assert Dataset.objects.count() == 0
    assert storage_entries() == before


def test_duplicate_dataset_name_is_refused(client, ml_dataset):
    response = upload(client, name="ml", fmt="csv", interactions=("i.csv", CSV_OK), items=("t.csv", ITEMS_OK))
    assert response.status_code == 400 and "already have a dataset named 'ml'" in response.content.decode()
    assert Dataset.objects.count() == 1


def test_import_dataset_command_prepares_like_an_upload(user, capsys):
    from django.core.management import call_command
    from conftest import ML100K
    call_command("import_dataset", str(ML100K), "--format", "movielens", "--owner", "alice", "--name", "ml100k")
    dataset = Dataset.objects.get(pk=int(capsys.readouterr().out.strip()))
    assert dataset.status == "ready" and dataset.stats["items"] == 1682 and dataset.owner == user
    from django.core.management.base import CommandError
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("import_dataset", str(ML100K), "--format", "movielens", "--owner", "nobody")
