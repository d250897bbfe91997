"""The dataset profile the dataset page shows: interactions per user, histogram, splits, samples."""

from distill.data import PrepareOptions, prepare_dataset
from distill.data.profile import dataset_profile
from factories import chain_dataset


def test_every_user_has_length_interactions():
    profile = dataset_profile(chain_dataset(users=30, length=14))
    assert profile["users"] == 30
    assert profile["lengths"] == {"min": 14, "median": 14.0, "mean": 14.0, "p90": 14.0, "max": 14}


def test_histogram_puts_all_users_in_the_10_to_19_bin():
    profile = dataset_profile(chain_dataset(users=30, length=14))
    labels, counts = profile["histogram"]["labels"], profile["histogram"]["counts"]
    assert labels[:3] == ["1–4", "5–9", "10–19"] and labels[-1] == "1000+"
    assert counts == [0, 0, 30, 0, 0, 0, 0, 0, 0]


def test_split_sizes_are_the_prepared_splits():
    dataset = chain_dataset(users=30, length=14)
    assert dataset_profile(dataset)["splits"] == {s: len(dataset.split(s)) for s in ("train", "val", "test")}


def test_samples_show_the_latest_five_titles_and_the_next_item():
    dataset = chain_dataset(users=30, length=14)
    sample = dataset_profile(dataset)["samples"][0]
    test = dataset.test
    history = test.seq[0, :test.len_seq[0]]
    assert sample["history"] == [f"item {i}" for i in history[-5:]]
    assert sample["earlier"] == int(test.len_seq[0]) - 5
    assert sample["next"] == f"item {test.next[0]}" and sample["next_id"] == str(test.next[0])
    assert len(dataset_profile(dataset)["samples"]) == min(10, len(test))


def test_the_profile_of_a_tiny_prepared_dataset_exactly(tmp_path):
    """13 interactions of 3 users (6, 4 and 3), split by time: the last target (u3's i1) is test."""
    rows = [("u1", "i2"), ("u1", "i4"), ("u1", "i1"), ("u1", "i3"), ("u1", "i0"), ("u1", "i2"),
            ("u2", "i2"), ("u2", "i4"), ("u2", "i1"), ("u2", "i3"), ("u3", "i2"), ("u3", "i4"), ("u3", "i1")]
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp\n" + "".join(
        f"{user},{item},{100 * (t + 1)}\n" for t, (user, item) in enumerate(rows)))
    (tmp_path / "items.csv").write_text("item_id,title\n" + "".join(f"i{k},Title {k}\n" for k in range(5)))
    prepared = prepare_dataset("csv", tmp_path / "interactions.csv", tmp_path / "prepared",
                               items=tmp_path / "items.csv", options=PrepareOptions())
    assert dataset_profile(prepared) == {
        "users": 3,
        # [3, 4, 6]: p90 interpolates 4 + 0.8 * (6 - 4)
        "lengths": {"min": 3, "median": 4.0, "mean": 13 / 3, "p90": 5.6, "max": 6},
        "histogram": {"labels": ["1–4", "5–9", "10–19", "20–49", "50–99", "100–199", "200–499", "500–999",
                                 "1000+"],
                      "counts": [2, 1, 0, 0, 0, 0, 0, 0, 0]},
        "samples": [{"user": "u3", "history": ["Title 2", "Title 4"], "earlier": 0, "next": "Title 1",
                     "next_id": "i1"}],
        "splits": {"train": 8, "val": 1, "test": 1},
    }
