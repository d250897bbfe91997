"""POST /api/datasets/ with a bad upload: 400 with a message naming the problem, and no files and
no rows left behind."""

import pickle

import pytest

from webapp.studio.models import Dataset
from tests.factories import CSV_OK, ITEMS_OK, ml100k_files, storage_entries, upload

pytestmark = pytest.mark.django_db


u_data, u_item = ml100k_files()


BAD = {
    "empty interactions": (dict(fmt="csv", interactions=("i.csv", b""), items=("t.csv", ITEMS_OK)), "empty"),
    "only a header": (dict(fmt="csv", interactions=("i.csv", b"user_id,item_id,timestamp\n"),
                           items=("t.csv", ITEMS_OK)), "has a header but no data rows"),
    "wrong columns": (dict(fmt="csv", interactions=("i.csv", b"a,b,c\n1,2,3\n"), items=("t.csv", ITEMS_OK)),
                      "user_id"),
    "garbage bytes": (dict(fmt="csv", interactions=("i.csv", bytes(range(256)) * 40), items=("t.csv", ITEMS_OK)),
                      "text"),
    "a pickle": (dict(fmt="csv", interactions=("i.csv", pickle.dumps({"a": 1})), items=("t.csv", ITEMS_OK)),
                 "pickle"),
    "a zip archive (bomb or not)": (dict(fmt="csv", interactions=("i.csv", b"PK\x03\x04" + b"\0" * 100),
                                         items=("t.csv", ITEMS_OK)), "archive"),
    "gzip": (dict(fmt="csv", interactions=("i.csv", b"\x1f\x8b\x08" + b"\0" * 50), items=("t.csv", ITEMS_OK)),
             "is a gzip file, not a text file"),
    "over the size limit": (dict(fmt="csv", interactions=("i.csv", b"1,2,3\n" * (1024 * 1024)),
                                 items=("t.csv", ITEMS_OK)), "upload limit of 5 MB"),
    "missing items file": (dict(fmt="csv", interactions=("i.csv", CSV_OK)), "needs this file"),
    "an item without title": (dict(fmt="csv", interactions=("i.csv", CSV_OK + b"1,99,5000\n"),
                                   items=("t.csv", ITEMS_OK)), "'99'"),
    "ids that don't match between files": (dict(fmt="csv", interactions=("i.csv", CSV_OK.replace(b",1,", b",7,")),
                                                items=("t.csv", ITEMS_OK)), "no title"),
    "non-numeric timestamp": (dict(fmt="csv", interactions=("i.csv", CSV_OK + b"1,2,yesterday\n"),
                                   items=("t.csv", ITEMS_OK)), "yesterday"),
    "ragged rows": (dict(fmt="csv", interactions=("i.csv", CSV_OK + b"1,2\n"), items=("t.csv", ITEMS_OK)),
                    "line 44: 2 fields where 3 are expected"),
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
                                   items=("t.csv", ITEMS_OK + b"3,Another title\n")),
                              "item '3' appears again with another title"),
    "too few interactions for a split": (dict(fmt="csv", interactions=("i.csv", b"user_id,item_id,timestamp\n1,1,1\n"),
                                              items=("t.csv", ITEMS_OK)), "too little data"),
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
