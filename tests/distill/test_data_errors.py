"""Bad input: a DataError naming the file, the line and the fix, and nothing written."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from distill.data import PrepareOptions, prepare_dataset
from distill.errors import ConfigError, DataError

GOOD_ITEMS = "item_id,title\na,Alpha\nb,Beta\n"


def fails(tmp_path: Path, interactions: str | bytes, items: str | bytes = GOOD_ITEMS,
          fmt: str = "csv", **options) -> str:
    """Prepare from the given file contents; return the DataError's message, and check that no
    output directory was left behind."""
    inter, titles = tmp_path / "interactions.csv", tmp_path / "items.csv"
    for path, content in ((inter, interactions), (titles, items)):
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out"
    with pytest.raises(DataError) as error:
        prepare_dataset(fmt, inter, out, items=titles, options=PrepareOptions(**options))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    return str(error.value)


def test_empty_file(tmp_path):
    message = fails(tmp_path, "")
    assert message.startswith("interactions.csv: is empty")


def test_header_without_rows(tmp_path):
    assert "interactions.csv: has a header but no data rows" in fails(tmp_path, "user_id,item_id,timestamp\n")


def test_missing_column_lists_columns_and_option(tmp_path):
    message = fails(tmp_path, "user,item_id,timestamp\nu,a,1\n")
    assert "interactions.csv: no column 'user_id' (columns: user, item_id, timestamp)" in message
    assert "--user-col" in message and "user_col" in message


def test_missing_title_column_in_items_file(tmp_path):
    message = fails(tmp_path, "user_id,item_id,timestamp\nu,a,1\n", items="item_id,name\na,Alpha\n")
    assert "items.csv: no column 'title' (columns: item_id, name)" in message and "title_col" in message


def test_non_numeric_timestamp(tmp_path):
    message = fails(tmp_path, "user_id,item_id,timestamp\nu,a,1\nu,b,yesterday\n")
    assert message.startswith("interactions.csv line 3: timestamp 'yesterday' is not a number")


def test_item_without_title(tmp_path):
    rows = "".join(f"u{k},a,{k}\nu{k},b,{k + 1}\n" for k in range(5)) + "u9,9x,50\n"
    message = fails(tmp_path, "user_id,item_id,timestamp\n" + rows)
    assert message == ("items.csv: item '9x' (used in interactions.csv line 12) has no title; "
                       "add a row `9x,<title>`")


def test_empty_title_counts_as_missing(tmp_path):
    message = fails(tmp_path, "user_id,item_id,timestamp\nu,a,1\nu,b,2\n",
                    items="item_id,title\na,Alpha\nb,\n")
    assert "items.csv: item 'b' (used in interactions.csv line 3) has no title" in message


def test_unknown_format(tmp_path):
    message = fails(tmp_path, "user_id,item_id,timestamp\nu,a,1\n", fmt="parquet")
    assert message == "unknown format 'parquet'; known formats: csv, recbole, movielens, reference"


def test_binary_garbage(tmp_path):
    message = fails(tmp_path, bytes(range(256)) * 8)
    assert message.startswith("interactions.csv: does not look like a text file")


def test_binary_without_nul_bytes(tmp_path):
    # Not UTF-8, and full of control bytes: Latin-1 would decode it, but it is not text.
    message = fails(tmp_path, bytes(range(1, 32)) * 20 + b"\xff\xfe")
    assert message.startswith("interactions.csv: does not look like a text file")


def test_pickle_is_refused(tmp_path):
    message = fails(tmp_path, pickle.dumps({"user_id": [1], "item_id": [2]}, protocol=4))
    assert message == "interactions.csv: is a Python pickle; pickles are refused for safety; export as CSV"


def test_pickled_items_file_is_refused(tmp_path):
    message = fails(tmp_path, "user_id,item_id,timestamp\nu,a,1\n", items=pickle.dumps(["a"], protocol=2))
    assert "items.csv: is a Python pickle; pickles are refused for safety" in message


def test_ragged_row(tmp_path):
    message = fails(tmp_path, "user_id,item_id,timestamp\nu,a,1\nu,b,2\nu,c\n")
    assert message.startswith("interactions.csv line 4: 2 fields where 3 are expected")


def test_title_with_unquoted_separator_is_a_ragged_row(tmp_path):
    message = fails(tmp_path, "user_id,item_id,timestamp\nu,a,1\n", items="item_id,title\na,Toys, Games\n")
    assert message.startswith("items.csv line 2: 3 fields where 2 are expected")
    assert "quote fields that contain it" in message


def test_movielens_ragged_and_bad_timestamp(tmp_path):
    data = tmp_path / "ml"
    data.mkdir()
    (data / "u.item").write_text("1|One|x\n")
    (data / "u.data").write_text("1\t1\t5\t10\n1\t1\t5\n")
    with pytest.raises(DataError, match=r"u.data line 2: 3 fields where 4 are expected"):
        prepare_dataset("movielens", data, tmp_path / "out")
    (data / "u.data").write_text("1\t1\t5\t10\n1\t1\t5\tnoon\n")
    with pytest.raises(DataError, match=r"u.data line 2: timestamp 'noon' is not a number"):
        prepare_dataset("movielens", data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_recbole_missing_field(tmp_path):
    (tmp_path / "d.inter").write_text("user_id:token\titem:token\ttimestamp:float\n1\t2\t3\n")
    (tmp_path / "d.item").write_text("item_id:token\ttitle:token_seq\n2\tTwo\n")
    with pytest.raises(DataError) as error:
        prepare_dataset("recbole", tmp_path / "d.inter", tmp_path / "out")
    assert "d.inter: no field 'item_id' (fields: user_id, item, timestamp)" in str(error.value)
    assert "--item-col" in str(error.value)
    assert not (tmp_path / "out").exists()


def reference(folder: Path, train: str) -> Path:
    folder.mkdir()
    (folder / "train_data.csv").write_text("seq,len_seq,next\n" + train)
    for name in ("val_data.csv", "test_data.csv"):
        (folder / name).write_text('seq,len_seq,next\n"[0, 2]",1,1\n')
    (folder / "data_statis.csv").write_text("seq_size,item_num\n2,2\n")
    return folder


@pytest.mark.parametrize("row, problem", [
    ('"__import__(\'os\').system(\'true\')",1,1\n', "line 2: seq \"__import__"),
    ('"[0, 2]",3,1\n', "line 2: len_seq 3 is outside 1..2"),
    ('"[0, 1]",1,1\n', "line 2: seq after len_seq must be padding 2"),
    ('"[5, 2]",1,1\n', "line 2: item id >= item_num 2"),
])
def test_reference_rows_are_checked_never_evaluated(tmp_path, row, problem):
    with pytest.raises(DataError) as error:
        prepare_dataset("reference", reference(tmp_path / "ref", row), tmp_path / "out")
    assert str(error.value).startswith("train_data.csv " + problem.split(" ", 1)[0])
    assert problem in str(error.value)
    assert not (tmp_path / "out").exists()


def test_reference_missing_files(tmp_path):
    (tmp_path / "ref").mkdir()
    expected = "missing train_data.csv, val_data.csv, test_data.csv, data_statis.csv"
    with pytest.raises(DataError, match=expected):
        prepare_dataset("reference", tmp_path / "ref", tmp_path / "out")


def test_failure_keeps_a_previous_output_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stats.json").write_text("{}")
    inter = tmp_path / "interactions.csv"
    inter.write_text("user_id,item_id,timestamp\nu,a,soon\n")
    (tmp_path / "items.csv").write_text(GOOD_ITEMS)
    with pytest.raises(DataError, match=r"^interactions.csv line 2: timestamp 'soon' is not a number; timestamps "
                                        r"must be integers \(e.g. Unix seconds\) or ISO dates$"):
        prepare_dataset("csv", inter, out, items=tmp_path / "items.csv")
    assert [p.name for p in out.iterdir()] == ["stats.json"]


def test_too_little_data_for_a_split(tmp_path):
    message = fails(tmp_path, "user_id,item_id,timestamp\nu,a,1\nu,b,2\n")
    assert message == ("interactions.csv: too little data: the train and val splits are empty "
                       "(1 instances in all); give more interactions")


def test_bad_options_are_config_errors(tmp_path):
    for options, message in (
            (PrepareOptions(split="random"), "split: must be one of time, loo, got 'random'"),
            (PrepareOptions(max_len=0), "max_len: must be a whole number in 1..200, got 0"),
            (PrepareOptions(user_col="item_id"), "user_col: names the same column as item_col ('item_id'); "
                                                 "give each column option a different column")):
        with pytest.raises(ConfigError) as error:
            prepare_dataset("csv", tmp_path / "x.csv", tmp_path / "out", options=options)
        assert str(error.value) == message
