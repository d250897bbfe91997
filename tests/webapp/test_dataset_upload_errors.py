"""Bad uploads. What the request can see at once (which files a format needs, their names) is a
400 naming the field, with no row and no files kept. What only reading shows is the worker's: the
upload is accepted (202), then the dataset is `failed` with the reader's message naming the file
as uploaded, its line and the fix, and its files are deleted."""

import pickle

import pytest

from webapp.studio.models import Dataset
from tests.factories import CSV_OK, ITEMS_OK, ml100k_files, prepared, storage_entries, upload

pytestmark = pytest.mark.django_db


u_data, u_item = ml100k_files()
T = ("t.csv", ITEMS_OK)

REFUSED = {
    "empty interactions": (dict(fmt="csv", interactions=("i.csv", b""), items=T), "interactions", "empty"),
    "missing items file": (dict(fmt="csv", interactions=("i.csv", CSV_OK)), "items", "needs this file"),
    "movielens file misnamed": (dict(fmt="movielens", interactions=("ratings.txt", u_data.read_bytes()),
                                     items=("u.item", u_item.read_bytes())), "interactions", "ratings.txt"),
    "movielens pair mismatched": (dict(fmt="movielens", interactions=("u.data", u_data.read_bytes()),
                                       items=("movies.dat", u_item.read_bytes())), "items", "u.item"),
    "a file where none belongs": (dict(fmt="csv", interactions=("i.csv", CSV_OK), items=T,
                                       train=("x.csv", CSV_OK)), "train", "takes no train file"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_the_request_shows_is_a_400_on_the_field_leaving_nothing(client, case):
    kwargs, field, fragment = REFUSED[case]
    before = storage_entries()
    response = upload(client, name=f"bad {case}", **kwargs)
    assert response.status_code == 400, (case, response.status_code, response.content[:300])
    assert any(fragment in m for m in response.json()[field]), response.json()
    assert Dataset.objects.count() == 0 and storage_entries() == before


def _inter(rows: bytes) -> bytes:
    return b"user_id,item_id,timestamp\n" + rows


FAILED = {
    "only a header": (dict(fmt="csv", interactions=("i.csv", _inter(b"")), items=T), "has a header but no data rows"),
    "wrong columns": (dict(fmt="csv", interactions=("i.csv", b"a,b,c\n1,2,3\n"), items=T), "i.csv: no column 'user_id'"),
    "garbage bytes": (dict(fmt="csv", interactions=("i.csv", bytes(range(256)) * 40), items=T), "text"),
    "a pickle": (dict(fmt="csv", interactions=("i.csv", pickle.dumps({"a": 1})), items=T), "pickle"),
    "a zip archive (bomb or not)": (dict(fmt="csv", interactions=("i.csv", b"PK\x03\x04" + b"\0" * 100), items=T),
                                    "archive"),
    "gzip": (dict(fmt="csv", interactions=("i.csv", b"\x1f\x8b\x08" + b"\0" * 50), items=T),
             "is a gzip file, not a text file"),
    "an item without title": (dict(fmt="csv", interactions=("i.csv", CSV_OK + b"1,99,5000\n"), items=T), "'99'"),
    "ids that don't match between files": (dict(fmt="csv", interactions=("i.csv", CSV_OK.replace(b",1,", b",7,")),
                                                items=T), "no title"),
    "non-numeric timestamp": (dict(fmt="csv", interactions=("i.csv", CSV_OK + b"1,2,yesterday\n"), items=T),
                              "yesterday"),
    "a timestamp of 1e308": (dict(fmt="csv", interactions=("i.csv", CSV_OK + b"1,2,1e308\n"), items=T),
                             "i.csv line 44"),
    "a timestamp of 2**63": (dict(fmt="csv", interactions=("i.csv", CSV_OK + f"1,2,{2**63}\n".encode()), items=T),
                             "i.csv line 44"),
    "ragged rows": (dict(fmt="csv", interactions=("i.csv", CSV_OK + b"1,2\n"), items=T),
                    "i.csv line 44: 2 fields where 3 are expected"),
    "movielens with csv content": (dict(fmt="movielens", interactions=("u.data", CSV_OK),
                                        items=("u.item", u_item.read_bytes())), "u.data"),
    "recbole without header types": (dict(fmt="recbole", interactions=("x.inter", CSV_OK), items=("x.item", ITEMS_OK)),
                                     "no field"),
    "a duplicate title row": (dict(fmt="csv", interactions=("i.csv", CSV_OK), items=("t.csv", ITEMS_OK + b"3,Other\n")),
                              "item '3' appears again with another title"),
    "too few interactions for a split": (dict(fmt="csv", interactions=("i.csv", _inter(b"1,1,1\n")), items=T),
                                         "too little data"),
}


@pytest.mark.parametrize("case", list(FAILED))
def test_what_only_reading_shows_fails_the_dataset_with_the_readers_message(client, settings, case):
    kwargs, fragment = FAILED[case]
    before = storage_entries()
    body = prepared(client, upload(client, name=f"bad {case}", **kwargs))
    assert body["status"] == "failed", (case, body)
    assert fragment in body["error"], (case, body["error"])
    assert str(settings.STORAGE_ROOT) not in body["error"]   # the user's file names, not the server's paths
    assert storage_entries() == before                      # the unusable files are gone; the row says why
