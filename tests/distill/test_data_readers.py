"""Each input format read from tiny files written in tmp_path, and ML-100k read in place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill.data import PrepareOptions, prepare_dataset
from distill.data.readers.csv import read_csv
from distill.data.readers.movielens import read_movielens
from distill.data.readers.recbole import read_recbole
from distill.data.readers.reference import read_reference


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def triples(raw) -> list[tuple[str, str, int]]:
    """(raw user, raw item, timestamp) of each interaction, in file order."""
    inter = raw.interactions
    return list(zip(raw.user_names[inter.users].tolist(), raw.item_names[inter.items].tolist(),
                    inter.times.tolist()))


def test_csv_reads_quoted_titles_and_detects_separators(tmp_path):
    inter = write(tmp_path / "inter.tsv", "user_id\titem_id\ttimestamp\nu1\ta\t10\nu2\tb\t20\n")
    items = write(tmp_path / "items.csv",
                  'item_id,title\na,"Toys, Games and More"\nb,"He said ""hi"""\nc,Never used\n')
    raw = read_csv(inter, items, PrepareOptions())
    assert triples(raw) == [("u1", "a", 10), ("u2", "b", 20)]
    assert raw.titles == {"a": "Toys, Games and More", "b": 'He said "hi"', "c": "Never used"}
    assert raw.sources == ["inter.tsv", "items.csv"]


def test_csv_with_custom_columns_separator_and_timestamp_forms(tmp_path):
    inter = write(tmp_path / "log.csv", "who;what;when;stars\n"
                                        "7;x;2024-01-02T00:00:00;5\n7;y;1704153600.0;1\n")
    items = write(tmp_path / "names.csv", "what;name\nx;Ex\ny;Why\n")
    options = PrepareOptions(user_col="who", item_col="what", time_col="when", title_col="name",
                             rating_col="stars", min_rating=3, sep=";")
    raw = read_csv(inter, items, options)
    # An ISO date (read as UTC) and a float timestamp both become integer seconds.
    assert triples(raw) == [("7", "x", 1704153600), ("7", "y", 1704153600)]
    assert raw.interactions.ratings.tolist() == [5.0, 1.0]


def test_recbole_inter_with_item_file(tmp_path):
    write(tmp_path / "ml.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                 "1\t50\t4\t881250949.0\n2\t7\t3\t881250950\n")
    write(tmp_path / "ml.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\n"
                                "50\tStar Wars\t1977\n7\tTwelve Monkeys\t1995\n")
    raw = read_recbole(tmp_path, None, PrepareOptions())
    assert triples(raw) == [("1", "50", 881250949), ("2", "7", 881250950)]
    assert raw.titles == {"50": "Star Wars", "7": "Twelve Monkeys"}
    assert raw.sources == ["ml.inter", "ml.item"]


def test_recbole_titles_from_text_file(tmp_path):
    inter = write(tmp_path / "toys.inter", "user_id:token\titem_id:token\ttimestamp:float\nu\tA1\t5\n")
    write(tmp_path / "toys.text", "item_id:token\ttext:token_seq\nA1\tWooden train set\n")
    raw = read_recbole(inter, None, PrepareOptions())
    assert raw.titles == {"A1": "Wooden train set"}


def recbole_sequences(folder: Path) -> None:
    header = "session_id:token\titem_id_list:token_seq\titem_id:token\n"
    write(folder / "s.train.inter", header + "1\t1 2 3 4\t5\n2\t2 3\t4\n3\t4\t1\n")
    write(folder / "s.valid.inter", header + "1\t1 2 3 4 5\t2\n")
    write(folder / "s.test.inter", header + "2\t2 3 4\t5\n")
    write(folder / "s.item", "item_id:token\ttitle:token_seq\n"
          + "".join(f"{i}\tItem {i}\n" for i in range(1, 6)))


@pytest.mark.parametrize("given", ["s.train.inter", "s.valid.inter", "s.test.inter", "."])
def test_recbole_sequences_keep_their_split_and_window_to_max_len(tmp_path, given):
    recbole_sequences(tmp_path)
    data = prepare_dataset("recbole", tmp_path / given, tmp_path / "out",
                           options=PrepareOptions(max_len=3))
    pad = data.num_items
    assert data.item_ids == ["1", "2", "3", "4", "5"] and pad == 5
    # Histories longer than L keep their last L items, oldest first.
    np.testing.assert_array_equal(data.train.seq, [[1, 2, 3], [1, 2, pad], [3, pad, pad]])
    np.testing.assert_array_equal(data.train.len_seq, [3, 2, 1])
    np.testing.assert_array_equal(data.train.next, [4, 3, 0])
    np.testing.assert_array_equal(data.val.seq, [[2, 3, 4]])
    np.testing.assert_array_equal(data.test.seq, [[1, 2, 3]])
    np.testing.assert_array_equal(data.test.next, [4])
    assert data.user_ids == ["1", "2", "3"]
    np.testing.assert_array_equal(data.test.user, [1])
    assert data.stats["split"] == "given"
    assert data.stats["instances"] == {"train": 3, "val": 1, "test": 1}


def test_movielens_100k_layout_with_latin1_titles(tmp_path):
    write(tmp_path / "u.data", "1\t2\t5\t100\n2\t1\t3\t200\n")
    write(tmp_path / "u.item", b"1|Caf\xe9 (1995)|01-Jan-1995||http://x|0\n"
                               b"2|Toy Story (1995)|01-Jan-1995||http://y|0\n")
    raw = read_movielens(tmp_path, None, PrepareOptions())
    assert triples(raw) == [("1", "2", 100), ("2", "1", 200)]
    assert raw.titles == {"1": "Café (1995)", "2": "Toy Story (1995)"}
    # The ratings file with --items pointing elsewhere reads the same.
    moved = write(tmp_path / "titles.item", (tmp_path / "u.item").read_bytes())
    assert read_movielens(tmp_path / "u.data", moved, PrepareOptions()).titles == raw.titles


def test_movielens_1m_layout(tmp_path):
    write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    write(tmp_path / "movies.dat", b"1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                                   b"661::James and the Giant Peach (1996)::Animation|Children's\n")
    raw = read_movielens(tmp_path / "ratings.dat", None, PrepareOptions(min_rating=4))
    assert triples(raw) == [("1", "1193", 978300760), ("1", "661", 978302109)]
    assert raw.titles["661"] == "James and the Giant Peach (1996)"
    assert raw.interactions.ratings.tolist() == [5.0, 3.0]


def test_movielens_20m_csv_layout(tmp_path):
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n")
    write(tmp_path / "movies.csv", 'movieId,title,genres\n2,"American President, The (1995)",Comedy\n')
    raw = read_movielens(tmp_path, None, PrepareOptions())
    assert triples(raw) == [("1", "2", 1112486027)]
    assert raw.titles == {"2": "American President, The (1995)"}


def reference_dir(folder: Path) -> Path:
    folder.mkdir()
    write(folder / "train_data.csv", 'seq,len_seq,next\n"[0, 1, 4]",2,2\n"[2, 4, 4]",1,3\n')
    write(folder / "val_data.csv", 'seq,len_seq,next\n"[0, 1, 2]",3,3\n')
    write(folder / "test_data.csv", 'seq,len_seq,next\n"[1, 2, 3]",3,0\n')
    write(folder / "data_statis.csv", "seq_size,item_num\n3,4\n")
    return folder


def test_reference_reader_keeps_ids_split_and_default_titles(tmp_path):
    raw = read_reference(reference_dir(tmp_path / "ref"), None, PrepareOptions())
    assert raw.item_names.tolist() == ["0", "1", "2", "3"]
    assert raw.titles == {"0": "item 0", "1": "item 1", "2": "item 2", "3": "item 3"}
    train = raw.given["train"]
    assert train.history.tolist() == [0, 1, 2] and train.lengths.tolist() == [2, 1]
    assert train.next.tolist() == [2, 3]


def test_reference_titles_from_items_file(tmp_path):
    items = write(tmp_path / "items.csv", "item_id,title\n0,Zero\n1,One\n2,Two\n3,Three\n")
    data = prepare_dataset("reference", reference_dir(tmp_path / "ref"), tmp_path / "out", items=items,
                           options=PrepareOptions(max_len=3))
    assert data.titles == ["Zero", "One", "Two", "Three"]
    np.testing.assert_array_equal(data.train.seq, [[0, 1, 4], [2, 4, 4]])
    # No users or timestamps in the source: one user per row, time = row order across splits.
    np.testing.assert_array_equal(data.test.user, [3])
    np.testing.assert_array_equal(data.val.time, [2])


def test_movielens_100k_real(ml100k, tmp_path):
    data = prepare_dataset("movielens", ml100k, tmp_path / "ml")
    stats = data.stats
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100000)
    assert data.titles[0] == "Toy Story (1995)"
    instances = stats["instances"]
    total = sum(instances.values())
    assert total == 100000 - 943  # every rating after each user's first
    assert instances["train"] == total * 8 // 10
    assert instances["val"] == total * 9 // 10 - total * 8 // 10
    # Time split: no val or test target precedes the last train target.
    assert data.train.time.max() <= data.val.time.min() <= data.val.time.max() <= data.test.time.min()
