"""A timestamp that does not fit int64 (or is not finite) is a DataError naming the file and line,
in every reader that reads timestamps."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.data import prepare_dataset
from distill.errors import DataError

BAD = ["1e308", "inf", "nan", "-inf", str(2**63), str(-(2**63) - 1), "1e19"]


def refused(fmt: str, input: Path, out: Path) -> str:
    with pytest.raises(DataError) as error:
        prepare_dataset(fmt, input, out)
    assert not out.exists()
    return str(error.value)


@pytest.mark.parametrize("value", BAD)
def test_csv(tmp_path, value):
    (tmp_path / "interactions.csv").write_text(f"user_id,item_id,timestamp\nu,a,1\nu,b,{value}\n")
    (tmp_path / "items.csv").write_text("item_id,title\na,A\nb,B\n")
    assert refused("csv", tmp_path, tmp_path / "out").startswith(f"interactions.csv line 3: timestamp '{value}'")


@pytest.mark.parametrize("value", BAD)
def test_movielens(tmp_path, value):
    (tmp_path / "u.data").write_text(f"1\t1\t5\t10\n1\t2\t5\t{value}\n")
    (tmp_path / "u.item").write_text("1|One|x\n2|Two|x\n")
    assert refused("movielens", tmp_path, tmp_path / "out").startswith(f"u.data line 2: timestamp '{value}'")


@pytest.mark.parametrize("value", BAD)
def test_recbole_interactions(tmp_path, value):
    (tmp_path / "d.inter").write_text(f"user_id:token\titem_id:token\ttimestamp:float\n1\t1\t5\n1\t2\t{value}\n")
    (tmp_path / "d.item").write_text("item_id:token\ttitle:token_seq\n1\tOne\n2\tTwo\n")
    assert refused("recbole", tmp_path, tmp_path / "out").startswith(f"d.inter line 3: timestamp '{value}'")


@pytest.mark.parametrize("value", BAD)
def test_recbole_sequences(tmp_path, value):
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\ttimestamp:float\n"
    (tmp_path / "s.train.inter").write_text(header + f"1\t1\t2\t5\n1\t1 2\t1\t{value}\n")
    (tmp_path / "s.valid.inter").write_text(header + "1\t1 2\t1\t7\n")
    (tmp_path / "s.test.inter").write_text(header + "1\t1 2\t1\t8\n")
    (tmp_path / "s.item").write_text("item_id:token\ttitle:token_seq\n1\tOne\n2\tTwo\n")
    assert refused("recbole", tmp_path, tmp_path / "out").startswith(f"s.train.inter line 3: timestamp '{value}'")


def test_the_largest_int64_still_reads(tmp_path):
    rows = "".join(f"u{k},a,{k}\nu{k},b,{2**63 - 1 - k}\n" for k in range(10))
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp\n" + rows)
    (tmp_path / "items.csv").write_text("item_id,title\na,A\nb,B\n")
    dataset = prepare_dataset("csv", tmp_path, tmp_path / "out")
    assert int(dataset.test.time.max()) == 2**63 - 1
