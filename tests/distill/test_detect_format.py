"""A folder of files under their own names: `detect_format` recognises the format like `prepare
--input DIR`, and every reader prepares such a folder (`items=None`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distill.data import prepare_dataset
from distill.data.readers import detect_format
from distill.errors import DataError, option_style

ROWS = "".join(f"u{k},a,{k}\nu{k},b,{k + 1}\n" for k in range(10))


def folder_with(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def movielens(root: Path) -> Path:
    rows = "".join(f"{u}\t{i}\t5\t{u * 10 + i}\n" for u in range(1, 11) for i in (1, 2))
    return folder_with(root, {"u.data": rows, "u.item": "1|One|x\n2|Two|x\n", "README": "MovieLens"})


def reference(root: Path) -> Path:
    rows = 'seq,len_seq,next\n"[0, 2]",1,1\n'
    return folder_with(root, {"train_data.csv": rows, "val_data.csv": rows, "test_data.csv": rows,
                              "data_statis.csv": "seq_size,item_num\n2,2\n"})


def recbole(root: Path) -> Path:
    rows = "".join(f"{u}\t{i}\t{u * 10 + i}\n" for u in range(10) for i in (1, 2))
    return folder_with(root, {"toys.inter": "user_id:token\titem_id:token\ttimestamp:float\n" + rows,
                              "toys.item": "item_id:token\ttitle:token_seq\n1\tOne\n2\tTwo\n"})


def csv_pair(root: Path, items_name: str = "meta.csv") -> Path:
    return folder_with(root, {"reviews.csv": "user_id,item_id,timestamp\n" + ROWS,
                              items_name: "item_id,title\na,Alpha\nb,Beta\n"})


@pytest.mark.parametrize("make, fmt", [(movielens, "movielens"), (reference, "reference"), (recbole, "recbole"),
                                       (csv_pair, "csv")])
def test_each_format_is_recognised_by_its_file_names(tmp_path, make, fmt):
    assert detect_format(make(tmp_path / "data")) == fmt


@pytest.mark.parametrize("make", [movielens, reference, recbole, csv_pair])
def test_every_format_prepares_from_its_folder(tmp_path, make):
    folder = make(tmp_path / "data")
    dataset = prepare_dataset(detect_format(folder), folder, tmp_path / "out")
    assert len(dataset.train) > 0 and (tmp_path / "out" / "stats.json").is_file()


def test_csv_folder_tells_the_items_file_by_its_title_column(tmp_path):
    # The items file sorts first by name: the header, not the order, decides.
    folder = csv_pair(tmp_path / "data", items_name="a-items.tsv")
    dataset = prepare_dataset("csv", folder, tmp_path / "out")
    assert dataset.titles == ["Alpha", "Beta"] and dataset.stats["users"] == 10
    assert dataset.stats["sources"] == ["reviews.csv", "a-items.tsv"]


def test_csv_folder_where_both_files_have_titles_is_refused_naming_them(tmp_path):
    folder = folder_with(tmp_path / "data", {"one.csv": "item_id,title\na,A\n", "two.csv": "item_id,title\nb,B\n"})
    with pytest.raises(DataError) as error:
        prepare_dataset("csv", folder, tmp_path / "out")
    message = str(error.value)
    assert "one.csv and two.csv both have the columns 'item_id' and 'title'" in message
    assert "--title-col" in message and str(tmp_path) not in message


def test_csv_folder_with_one_file_asks_for_the_other(tmp_path):
    folder = folder_with(tmp_path / "data", {"reviews.csv": "user_id,item_id,timestamp\n" + ROWS})
    with option_style("form"), pytest.raises(DataError) as error:
        prepare_dataset("csv", folder, tmp_path / "out")
    assert "found reviews.csv" in str(error.value) and "upload exactly those two files" in str(error.value)


def test_nothing_recognised_lists_the_files_and_what_each_format_expects(tmp_path):
    folder = folder_with(tmp_path / "data", {"notes.json": "{}", "sheet.xlsx": "x"})
    with pytest.raises(DataError) as error:
        detect_format(folder)
    message = str(error.value)
    assert "found: notes.json, sheet.xlsx" in message
    for expected in ("u.data + u.item", "train_data.csv", "NAME.inter", "an interactions file and an items file"):
        assert expected in message
    assert str(tmp_path) not in message


def test_a_partial_reference_folder_names_the_missing_files(tmp_path):
    folder = folder_with(tmp_path / "data", {"train_data.csv": "seq,len_seq,next\n", "val_data.csv": "x\n"})
    with option_style("form"), pytest.raises(DataError) as error:
        detect_format(folder)
    assert "test_data.csv, data_statis.csv are missing; upload them too" in str(error.value)


def test_cli_prepare_recognises_a_folder_without_format(tmp_path):
    folder = recbole(tmp_path / "data")
    proc = subprocess.run([sys.executable, "-m", "distill", "prepare", "--input", str(folder), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert '"format": "recbole"' in proc.stdout


def test_prepare_reports_progress_in_order(tmp_path):
    folder = csv_pair(tmp_path / "data")
    calls = []
    prepare_dataset("csv", folder, tmp_path / "out", progress=lambda message, fraction: calls.append(fraction))
    assert calls == sorted(calls) and calls[0] <= 0.1 and calls[-1] == 1.0 and len(calls) >= 4
