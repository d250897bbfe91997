"""The prepare options' schema: the form/command-line parser and its refusals, the generated
command-line flags, and fix hints that speak the user's interface (flag or form field)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distill.data import PrepareOptions, prepare_dataset
from distill.data.prepare import prepare_fields
from distill.errors import ConfigError, DataError, OptionError, option_hint, option_style

ROWS = "".join(f"u{k},a,{k}\nu{k},b,{k + 1}\n" for k in range(10))
ITEMS = "item_id,title\na,Alpha\nb,Beta\n"


def refusal(values: dict) -> OptionError:
    with pytest.raises(OptionError) as error:
        PrepareOptions.from_form(values)
    return error.value


def test_schema_lists_every_option_in_field_order_with_bounds():
    fields = {f["name"]: f for f in prepare_fields()}
    assert list(fields) == ["max_len", "split", "kcore", "min_rating", "user_col", "item_col", "time_col",
                            "title_col", "rating_col", "sep"]
    assert fields["max_len"] == {**fields["max_len"], "type": "int", "default": 10, "min": 1, "max": 200,
                                 "choices": None}
    assert fields["split"]["choices"] == ("time", "loo")
    assert (fields["kcore"]["min"], fields["kcore"]["max"]) == (0, 10000)
    assert fields["min_rating"]["type"] == "float" and fields["min_rating"]["default"] is None
    assert all(f["help"] for f in fields.values())


def test_form_text_is_parsed_and_empty_means_default():
    options = PrepareOptions.from_form({"max_len": "25", "split": "loo", "kcore": "5", "min_rating": "3.5",
                                        "user_col": " reviewerID ", "sep": "\\t", "title_col": ""})
    assert options == PrepareOptions(max_len=25, split="loo", kcore=5, min_rating=3.5, user_col="reviewerID",
                                     sep="\t")


def test_max_len_zero_is_refused_on_its_field():
    error = refusal({"max_len": "0"})
    assert error.field == "max_len"
    assert str(error) == "max_len: must be a whole number in 1..200, got '0'"


def test_unknown_split_is_refused_on_its_field():
    error = refusal({"split": "weird"})
    assert error.field == "split" and str(error) == "split: must be one of time, loo, got 'weird'"


def test_unknown_option_names_are_listed_with_the_known_ones():
    error = refusal({"foo": "1", "max_len": "5"})
    assert error.field == "detail" and error.unknown == ["foo"]
    assert str(error).startswith("unknown option(s) 'foo'; known: item_col, kcore, max_len, min_rating, "
                                 "rating_col, sep, split")


@pytest.mark.parametrize("field, value", [("max_len", "2.5"), ("max_len", "201"), ("kcore", "-1"),
                                          ("min_rating", "nan"), ("min_rating", "inf"), ("min_rating", "high"),
                                          ("user_col", "a" * 101), ("item_col", "bad\x07name"), ("sep", ",,")])
def test_out_of_bounds_values_are_refused_on_their_field(field, value):
    error = refusal({field: value})
    assert error.field == field and str(error).startswith(f"{field}: must be")


def test_two_options_naming_one_column_are_refused_on_the_changed_one():
    error = refusal({"user_col": "item_id"})
    assert error.field == "user_col" and "same column as item_col" in str(error)


def test_check_uses_the_same_bounds():
    with pytest.raises(OptionError) as error:
        PrepareOptions(kcore=10001).check()
    assert error.value.field == "kcore" and isinstance(error.value, ConfigError)


def test_kcore_on_a_pre_split_source_is_refused_on_its_field(tmp_path):
    (tmp_path / "ref").mkdir()
    for name in ("train_data.csv", "val_data.csv", "test_data.csv"):
        (tmp_path / "ref" / name).write_text('seq,len_seq,next\n"[0, 2]",1,1\n')
    (tmp_path / "ref" / "data_statis.csv").write_text("seq_size,item_num\n2,2\n")
    with pytest.raises(OptionError) as error:
        prepare_dataset("reference", tmp_path / "ref", tmp_path / "out", options=PrepareOptions(kcore=2))
    assert error.value.field == "kcore" and "--kcore" in str(error.value)


def test_option_hint_is_a_flag_by_default_and_a_form_field_in_form_style():
    assert option_hint("user_col") == "--user-col"
    with option_style("form"):
        assert option_hint("user_col") == "form field user_col"
    assert option_hint("user_col") == "--user-col"


def csv_files(folder: Path, header: str = "user_id,item_id,timestamp") -> tuple[Path, Path]:
    (folder / "reviews.csv").write_text(header + "\n" + ROWS)
    (folder / "meta.csv").write_text(ITEMS)
    return folder / "reviews.csv", folder / "meta.csv"


def test_a_missing_column_names_the_form_field_in_form_style(tmp_path):
    inter, items = csv_files(tmp_path, "reviewerID,item_id,timestamp")
    with option_style("form"), pytest.raises(DataError) as error:
        prepare_dataset("csv", inter, tmp_path / "out", items=items)
    assert "reviews.csv: no column 'user_id'" in str(error.value)
    assert "form field user_col" in str(error.value) and "--user-col" not in str(error.value)


def test_a_missing_items_file_asks_for_an_upload_in_form_style(tmp_path):
    inter, _ = csv_files(tmp_path)
    with option_style("form"), pytest.raises(DataError) as error:
        prepare_dataset("csv", inter, tmp_path / "out")
    assert "upload the items file too" in str(error.value) and "--items" not in str(error.value)


def test_a_recbole_field_names_the_form_field_in_form_style(tmp_path):
    (tmp_path / "d.inter").write_text("user_id:token\titem:token\ttimestamp:float\n1\t2\t3\n")
    (tmp_path / "d.item").write_text("item_id:token\ttitle:token_seq\n2\tTwo\n")
    with option_style("form"), pytest.raises(DataError) as error:
        prepare_dataset("recbole", tmp_path, tmp_path / "out")
    assert "d.inter: no field 'item_id'" in str(error.value) and "form field item_col" in str(error.value)
    assert "--" not in str(error.value)


def run_prepare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill", "prepare", *map(str, args)],
                          capture_output=True, text=True)


def test_cli_flags_come_from_the_schema_and_share_its_bounds(tmp_path):
    proc = run_prepare("--input", tmp_path, "--out", tmp_path / "out", "--max-len", "0")
    assert proc.returncode == 2 and proc.stderr == "error: max_len: must be a whole number in 1..200, got '0'\n"
    inter, items = csv_files(tmp_path, "who,item_id,timestamp")
    proc = run_prepare("--format", "csv", "--input", inter, "--items", items, "--out", tmp_path / "out",
                       "--user-col", "who", "--max-len", "3")
    assert proc.returncode == 0, proc.stderr
    assert '"format": "csv"' in proc.stdout and '"users": 10' in proc.stdout
