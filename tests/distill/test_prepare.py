"""Preprocessing (docs/method.md §1): id map, windows, padding, splits, k-core, stats, reference export."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from distill.data import PreparedDataset, PrepareOptions, export_reference, prepare_dataset
from distill.data.dataset import SPLITS
from distill.data.prepare import kcore_mask
from distill.io import read_json


def write_csv(folder: Path, rows: list[tuple], titles: dict[str, str] | None = None,
              header: str = "user_id,item_id,timestamp") -> tuple[Path, Path]:
    """interactions.csv from (user, item, time[, ...]) rows and items.csv (default: every item titled)."""
    folder.mkdir(parents=True, exist_ok=True)
    inter = folder / "interactions.csv"
    inter.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    if titles is None:
        titles = {str(r[1]): f"Title {r[1]}" for r in rows}
    items = folder / "items.csv"
    items.write_text("item_id,title\n" + "".join(f"{i},{t}\n" for i, t in titles.items()))
    return inter, items


def prepare(tmp_path: Path, rows: list[tuple], name: str = "out", **options) -> PreparedDataset:
    inter, items = write_csv(tmp_path / f"{name}-input", rows)
    return prepare_dataset("csv", inter, tmp_path / name, items=items, options=PrepareOptions(**options))


# One user, four interactions: three instances, one per split under leave-one-out.
ONE_USER = [("u", "5", 1), ("u", "7", 2), ("u", "9", 3), ("u", "11", 4)]


def test_windows_of_a_user_with_four_interactions(tmp_path):
    data = prepare(tmp_path, ONE_USER, split="loo", max_len=4)
    assert data.item_ids == ["5", "7", "9", "11"]  # numeric order, not "11" < "5"
    pad = data.num_items
    assert pad == data.pad_id == 4
    np.testing.assert_array_equal(data.train.seq, [[0, pad, pad, pad]])
    np.testing.assert_array_equal(data.val.seq, [[0, 1, pad, pad]])
    np.testing.assert_array_equal(data.test.seq, [[0, 1, 2, pad]])
    assert [data.split(s).len_seq.tolist() for s in SPLITS] == [[1], [2], [3]]
    assert [data.split(s).next.tolist() for s in SPLITS] == [[1], [2], [3]]
    assert [data.split(s).time.tolist() for s in SPLITS] == [[2], [3], [4]]


def test_histories_longer_than_max_len_keep_the_most_recent_items(tmp_path):
    data = prepare(tmp_path, ONE_USER, split="loo", max_len=2)
    np.testing.assert_array_equal(data.train.seq, [[0, 4]])
    np.testing.assert_array_equal(data.val.seq, [[0, 1]])
    np.testing.assert_array_equal(data.test.seq, [[1, 2]])
    np.testing.assert_array_equal(data.test.len_seq, [2])


def test_equal_timestamps_keep_file_order(tmp_path):
    rows = [("u", "a", 5), ("u", "b", 5), ("u", "c", 1), ("u", "d", 9)]
    data = prepare(tmp_path, rows, split="loo")
    # Sorted: c (t=1), then a and b (t=5) in file order, then d.
    a, b, c, d = (data.item_ids.index(x) for x in "abcd")
    assert [data.split(s).next.tolist()[0] for s in SPLITS] == [a, b, d]
    np.testing.assert_array_equal(data.test.seq[0, :3], [c, a, b])


# Three users, ten instances. Targets sorted by (time, user, position):
# t3 u1, t4 u2, t5 u1, t5 u2, t6 u3, t7 u1, t8 u2, t9 u1 | t9 u3 | t10 u3
TIME_ROWS = [
    (1, 101, 1), (1, 102, 3), (1, 103, 5), (1, 104, 7), (1, 105, 9),
    (2, 201, 2), (2, 202, 4), (2, 203, 5), (2, 204, 8),
    (3, 301, 1), (3, 302, 6), (3, 303, 9), (3, 101, 10),
]


def test_time_split_by_target_time_with_ties_by_user(tmp_path):
    data = prepare(tmp_path, TIME_ROWS, max_len=3)
    # Items sorted numerically: 101..105 -> 0..4, 201..204 -> 5..8, 301..303 -> 9..11.
    assert data.item_ids == ["101", "102", "103", "104", "105", "201", "202", "203", "204",
                             "301", "302", "303"]
    pad = 12
    assert data.train.next.tolist() == [1, 6, 2, 7, 10, 3, 8, 4]
    assert data.train.user.tolist() == [0, 1, 0, 1, 2, 0, 1, 0]
    assert data.train.time.tolist() == [3, 4, 5, 5, 6, 7, 8, 9]
    np.testing.assert_array_equal(data.val.seq, [[9, 10, pad]])
    assert data.val.next.tolist() == [11] and data.val.user.tolist() == [2]
    np.testing.assert_array_equal(data.test.seq, [[9, 10, 11]])
    assert data.test.next.tolist() == [0]
    assert data.stats["instances"] == {"train": 8, "val": 1, "test": 1}


def test_leave_one_out_split(tmp_path):
    data = prepare(tmp_path, TIME_ROWS, split="loo")
    # Per user: last instance test, the one before val, the rest train.
    assert data.test.next.tolist() == [4, 8, 0]       # 105, 204, 101
    assert data.val.next.tolist() == [3, 7, 11]       # 104, 203, 303
    assert data.train.next.tolist() == [1, 2, 6, 10]  # 102, 103, 202, 302
    assert data.train.user.tolist() == [0, 0, 1, 2]
    assert data.stats["split"] == "loo"


def test_kcore_mask_iterates_until_stable():
    # Users 0,1 and items 0,1 form a 2-core. User 2 has one interaction; user 3's item 3 has
    # one, and once it goes user 3 has only one left, so user 3 goes in the second round.
    users = np.array([0, 0, 1, 1, 2, 3, 3])
    items = np.array([0, 1, 0, 1, 2, 0, 3])
    assert kcore_mask(users, items, 2).tolist() == [True, True, True, True, False, False, False]
    assert kcore_mask(users, items, 0).all()


def test_kcore_drops_users_and_items_and_renumbers(tmp_path):
    block = [(u, i, 10 * u + i) for u in range(1, 5) for i in range(1, 5)]  # 4 users x 4 items
    noise = [(5, 1, 100), (5, 2, 101), (5, 99, 102)]  # item 99 has 1 interaction; then user 5 has 2
    data = prepare(tmp_path, block + noise, kcore=3)
    assert data.item_ids == ["1", "2", "3", "4"] and data.user_ids == ["1", "2", "3", "4"]
    assert (data.stats["interactions"], data.stats["kcore"]) == (16, 3)
    assert sum(data.stats["instances"].values()) == 12


def test_same_data_in_shuffled_row_order_gives_identical_arrays_and_hash(tmp_path):
    rows = [(u, f"it{(u * 7 + k * 3) % 11}", 100 * u + k) for u in range(6) for k in range(5)]
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    first = prepare(tmp_path, rows, name="a")
    second = prepare(tmp_path, shuffled, name="b")
    assert first.item_ids == second.item_ids == sorted(first.item_ids)  # lexicographic: not all integers
    assert first.content_hash == second.content_hash
    for name in SPLITS:
        for array, other in zip(first.split(name).arrays().values(), second.split(name).arrays().values()):
            np.testing.assert_array_equal(array, other)


def test_rating_filter(tmp_path):
    rows = [(u, i, 10 * u + i, 1 if i == 3 else 5) for u in range(1, 5) for i in range(1, 6)]
    inter, items = write_csv(tmp_path / "in", rows, header="user_id,item_id,timestamp,rating")
    data = prepare_dataset("csv", inter, tmp_path / "out", items=items,
                           options=PrepareOptions(min_rating=4))
    assert "3" not in data.item_ids and data.stats["interactions"] == 16


def test_output_directory_and_stats(tmp_path):
    data = prepare(tmp_path, TIME_ROWS)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "items.json", "stats.json", "test.safetensors", "train.safetensors", "users.json",
        "val.safetensors"]
    stats = read_json(out / "stats.json")
    assert stats == data.stats
    assert {k: stats[k] for k in ("users", "items", "interactions", "max_len", "split", "kcore",
                                  "format", "sources")} == {
        "users": 3, "items": 12, "interactions": 13, "max_len": 10, "split": "time", "kcore": 0,
        "format": "csv", "sources": ["interactions.csv", "items.csv"]}
    loaded = PreparedDataset.load(out)
    assert loaded.content_hash == data.content_hash and loaded.titles[0] == "Title 101"
    np.testing.assert_array_equal(loaded.train.seq, data.train.seq)


def test_reference_export_and_import_round_trip(tmp_path):
    block = [(u, i, 10 * u + (i * 7) % 5) for u in range(1, 6) for i in range(1, 6)]
    data = prepare(tmp_path, block, max_len=3)
    export_reference(PreparedDataset.load(tmp_path / "out"), tmp_path / "ref")
    assert (tmp_path / "ref" / "data_statis.csv").read_text().splitlines() == ["seq_size,item_num", "3,5"]
    first_row = (tmp_path / "ref" / "train_data.csv").read_text().splitlines()[1]
    seq = data.train.seq[0].tolist()
    assert first_row == f'"[{seq[0]}, {seq[1]}, {seq[2]}]",{data.train.len_seq[0]},{data.train.next[0]}'
    back = prepare_dataset("reference", tmp_path / "ref", tmp_path / "back",
                           options=PrepareOptions(max_len=3))
    assert back.num_items == data.num_items
    for name in SPLITS:
        for array in ("seq", "len_seq", "next"):
            np.testing.assert_array_equal(getattr(back.split(name), array), getattr(data.split(name), array))


@pytest.mark.slow
def test_reference_round_trip_on_ml100k(ml100k, tmp_path):
    data = prepare_dataset("movielens", ml100k, tmp_path / "ml")
    export_reference(data, tmp_path / "ref")
    back = prepare_dataset("reference", tmp_path / "ref", tmp_path / "back")
    for name in SPLITS:
        for array in ("seq", "len_seq", "next"):
            np.testing.assert_array_equal(getattr(back.split(name), array), getattr(data.split(name), array))
