"""The RecBole/UniSRec layout: split .inter files holding integer indices, NAME.item2index and
NAME.user2index joining them to the original tokens, titles in NAME.text keyed by token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill.data import PrepareOptions, prepare_dataset
from distill.data.synth import write_recbole_splits
from distill.errors import DataError, option_style

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
TOKENS = ["B0AAAAAAA1", "B0CCCCCCC3", "B0BBBBBBB2", "B0EEEEEEE5", "B0DDDDDDD4"]   # index 1..5
LONG = "a description that goes on " * 20


def unisrec(folder: Path) -> Path:
    files = {
        "Office.train.inter": HEADER + "1\t1\t2\n1\t1 2\t3\n2\t2\t3\n",
        "Office.valid.inter": HEADER + "1\t1 2 3\t4\n2\t2 3\t1\n",
        "Office.test.inter": HEADER + "1\t1 2 3 4\t5\n2\t2 3 1\t4\n",
        "Office.item2index": "".join(f"{token}\t{i}\n" for i, token in enumerate(TOKENS, start=1)),
        "Office.user2index": "AUSERONE0000000\t1\nAUSERTWO0000000\t2\n",
        "Office.text": "item_id:token\ttext:token_seq\n"
                       + "".join(f"{token}\tTitle of {token}. {LONG}\n" for token in TOKENS),
    }
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def refused(folder: Path, **options) -> str:
    with pytest.raises(DataError) as error:
        prepare_dataset("recbole", folder, folder.parent / "out", options=PrepareOptions(**options))
    message = str(error.value)
    assert str(folder) not in message and not (folder.parent / "out").exists()
    return message


def edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_ids_are_the_original_tokens_and_titles_come_from_the_text(tmp_path):
    dataset = prepare_dataset("recbole", unisrec(tmp_path / "office"), tmp_path / "out")
    assert dataset.item_ids == sorted(TOKENS)
    assert dataset.user_ids == ["AUSERONE0000000", "AUSERTWO0000000"]
    titles = dict(zip(dataset.item_ids, dataset.titles))
    assert titles["B0CCCCCCC3"] == f"Title of B0CCCCCCC3. {LONG}".strip()   # the whole text, not cut
    # The second training row, "1 2 -> 3", in tokens.
    ids = np.array(dataset.item_ids)
    assert ids[dataset.train.seq[1, :2]].tolist() == [TOKENS[0], TOKENS[1]]
    assert ids[dataset.train.next[1]] == TOKENS[2]


def test_a_users_several_rows_are_one_user(tmp_path):
    dataset = prepare_dataset("recbole", unisrec(tmp_path / "office"), tmp_path / "out")
    assert dataset.stats["users"] == 2
    np.testing.assert_array_equal(dataset.train.user, [0, 0, 1])
    np.testing.assert_array_equal(dataset.test.user, [0, 1])


def test_unsplit_inter_is_joined_through_the_maps_too(tmp_path):
    folder = unisrec(tmp_path / "office")
    for split in ("train", "valid", "test"):
        (folder / f"Office.{split}.inter").unlink()
    rows = "".join(f"{u}\t{i}\t{10 * u + i}\n" for u in (1, 2) for i in (1, 2, 3, 4, 5))
    (folder / "Office.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + rows)
    dataset = prepare_dataset("recbole", folder, tmp_path / "out")
    assert dataset.item_ids == sorted(TOKENS) and dataset.user_ids == ["AUSERONE0000000", "AUSERTWO0000000"]


def test_a_missing_split_file_is_named(tmp_path):
    folder = unisrec(tmp_path / "office")
    (folder / "Office.valid.inter").unlink()
    assert refused(folder).startswith("Office.valid.inter is missing; put it beside Office.train.inter")
    with option_style("form"):
        assert "upload it with Office.train.inter" in refused(folder)


def test_text_keyed_by_tokens_without_the_item_map_asks_for_it(tmp_path):
    folder = unisrec(tmp_path / "office")
    (folder / "Office.item2index").unlink()
    message = refused(folder)
    assert message.startswith("Office.text line 2: item 'B0AAAAAAA1' is not an item id of Office.train.inter")
    assert "Office.item2index" in message


def test_a_token_twice_in_the_map_names_both_lines(tmp_path):
    folder = unisrec(tmp_path / "office")
    (folder / "Office.item2index").write_text((folder / "Office.item2index").read_text() + "B0AAAAAAA1\t6\n")
    assert refused(folder).startswith("Office.item2index line 6: token 'B0AAAAAAA1' appears again "
                                      "(first on line 1)")


def test_an_index_twice_in_the_map_names_both_lines(tmp_path):
    folder = unisrec(tmp_path / "office")
    edit(folder / "Office.user2index", "AUSERTWO0000000\t2", "AUSERTWO0000000\t1")
    assert refused(folder).startswith("Office.user2index line 2: index 1 appears again (first on line 1, "
                                      "token 'AUSERONE0000000')")


def test_an_index_the_map_lacks_names_the_inter_line(tmp_path):
    folder = unisrec(tmp_path / "office")
    edit(folder / "Office.valid.inter", "2\t2 3\t1", "2\t2 9\t1")
    message = refused(folder)
    assert message.startswith("Office.valid.inter line 3: item '9' is not an index in Office.item2index")


def test_a_user_index_the_map_lacks_names_the_inter_line(tmp_path):
    folder = unisrec(tmp_path / "office")
    edit(folder / "Office.test.inter", "2\t2 3 1\t4", "7\t2 3 1\t4")
    assert refused(folder).startswith("Office.test.inter line 3: user '7' is not an index in Office.user2index")


def test_a_text_token_the_map_lacks_names_the_text_line(tmp_path):
    folder = unisrec(tmp_path / "office")
    (folder / "Office.text").write_text((folder / "Office.text").read_text() + "B0NOTINMAP\tStray\n")
    assert refused(folder).startswith("Office.text line 7: item 'B0NOTINMAP' is not a token of Office.item2index")


def test_a_malformed_map_line_is_named(tmp_path):
    folder = unisrec(tmp_path / "office")
    edit(folder / "Office.item2index", "B0BBBBBBB2\t3", "B0BBBBBBB2\tthree")
    assert refused(folder).startswith("Office.item2index line 3:")


def test_sequences_without_a_split_name_the_file(tmp_path):
    folder = tmp_path / "office"
    folder.mkdir()
    (folder / "Office.inter").write_text(HEADER + "1\t1\t2\n")
    (folder / "Office.text").write_text("item_id:token\ttext:token_seq\n1\tOne\n2\tTwo\n")
    message = refused(folder)
    assert message.startswith("Office.inter: holds sequences (item_id_list) but no split")
    assert "Office.train.inter" in message


def test_generated_splits_prepare_with_tokens_and_every_user(tmp_path):
    summary = write_recbole_splits(tmp_path / "gen", users=200, items=300, seed=1)
    assert summary["files"] == ["Office.train.inter", "Office.valid.inter", "Office.test.inter",
                                "Office.item2index", "Office.user2index", "Office.text"]
    dataset = prepare_dataset("recbole", tmp_path / "gen", tmp_path / "out", options=PrepareOptions(max_len=50))
    assert dataset.stats["users"] == 200
    assert dataset.stats["instances"]["val"] == 200 and dataset.stats["instances"]["test"] == 200
    assert all(item.startswith("B0") and len(item) == 10 and not item.isdigit() for item in dataset.item_ids)
    assert all(user.startswith("A") and len(user) == 14 for user in dataset.user_ids)
    assert all(len(title) > 40 for title in dataset.titles)


def test_generated_splits_are_deterministic_by_seed(tmp_path):
    write_recbole_splits(tmp_path / "a", users=50, items=100, seed=3)
    write_recbole_splits(tmp_path / "b", users=50, items=100, seed=3)
    write_recbole_splits(tmp_path / "c", users=50, items=100, seed=4)
    for name in ("Office.train.inter", "Office.text", "Office.item2index"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
