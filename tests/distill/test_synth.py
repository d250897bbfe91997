"""The synthetic catalogue: deterministic files, and signal in both sequences and titles."""

import csv
from collections import defaultdict

import numpy as np
import pytest

from distill.data.synth import GENERIC_WORDS, TOPIC_WORDS, generate_synthetic, topic_vocabularies
from distill.errors import ConfigError

WORD_TOPIC = {word: topic for topic, words in enumerate(TOPIC_WORDS.values()) for word in words}


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def title_topic(title):
    """The topic a title's words belong to (the generator never mixes topics in one title)."""
    topics = {WORD_TOPIC[word] for word in title.split()[:-1] if word in WORD_TOPIC}
    assert len(topics) == 1, title
    return topics.pop()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = generate_synthetic(out, users=300, items=800, topics=20,
                                 interactions_per_user=(20, 40), seed=3)
    _, interactions = read_rows(out / "interactions.csv")
    _, items = read_rows(out / "items.csv")
    titles = {int(item): title for item, title in items}
    histories = defaultdict(list)
    for user, item, timestamp in interactions:
        histories[int(user)].append((int(timestamp), int(item)))
    return summary, out, titles, histories


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    args = dict(users=50, items=200, topics=8, interactions_per_user=(5, 15))
    generate_synthetic(tmp_path / "a", seed=7, **args)
    generate_synthetic(tmp_path / "b", seed=7, **args)
    generate_synthetic(tmp_path / "c", seed=8, **args)
    for name in ("interactions.csv", "items.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_headers_and_row_counts(catalogue):
    summary, out, titles, histories = catalogue
    header, interactions = read_rows(out / "interactions.csv")
    assert header == ["user_id", "item_id", "timestamp"]
    assert len(interactions) == summary["interactions"]
    assert sorted(histories) == list(range(300))
    assert all(20 <= len(history) <= 40 for history in histories.values())

    header, items = read_rows(out / "items.csv")
    assert header == ["item_id", "title"]
    assert [int(item) for item, _ in items] == list(range(800))
    assert summary["items"] == 800 and summary["users"] == 300 and summary["path"] == str(out)


def test_every_interacted_item_has_a_unique_title(catalogue):
    _, _, titles, histories = catalogue
    seen = {item for history in histories.values() for _, item in history}
    assert all(titles.get(item) for item in seen)
    assert len(set(titles.values())) == len(titles)


def test_titles_are_topic_words_and_a_number(catalogue):
    _, _, titles, _ = catalogue
    for title in titles.values():
        *words, number = title.split()
        assert number.isdigit()
        assert 2 <= len(words) <= 4
        assert all(word in WORD_TOPIC or word in GENERIC_WORDS for word in words), title
        assert sum(word in WORD_TOPIC for word in words) >= 2, title
        title_topic(title)
    assert len({title_topic(title) for title in titles.values()}) == 20


def test_consecutive_items_share_a_topic_far_more_often_than_chance(catalogue):
    _, _, titles, histories = catalogue
    sequences = [[title_topic(titles[item]) for _, item in sorted(history)]
                 for history in histories.values()]
    frequency = np.bincount([t for topics in sequences for t in topics], minlength=20)
    frequency = frequency / frequency.sum()
    chance = float((frequency ** 2).sum())
    pairs = [(a, b) for topics in sequences for a, b in zip(topics, topics[1:])]
    same = sum(a == b for a, b in pairs) / len(pairs)
    assert same > 3 * chance
    assert same > 0.75  # drift=0.1: the topic stays about 90% of the time


def test_sequels_follow_their_predecessor(catalogue):
    """Series share a title base and count up: the next title is often the sequel's."""
    _, _, titles, histories = catalogue
    pairs = [(titles[a].rsplit(" ", 1), titles[b].rsplit(" ", 1))
             for history in histories.values()
             for (_, a), (_, b) in zip(sorted(history), sorted(history)[1:])]
    sequels = sum(base_a == base_b and int(n_b) == int(n_a) + 1 for (base_a, n_a), (base_b, n_b) in pairs)
    assert sequels / len(pairs) > 0.05


def test_timestamps_increase_per_user_and_users_overlap_in_time(catalogue):
    _, out, _, histories = catalogue
    _, interactions = read_rows(out / "interactions.csv")
    for history in histories.values():
        times = [t for t, _ in history]  # in file order
        assert all(a < b for a, b in zip(times, times[1:]))

    # A global 80/10/10 split by time must mix users: most test users have training history.
    times = np.array(sorted(int(t) for _, _, t in interactions))
    train_end, test_start = times[int(0.8 * len(times))], times[int(0.9 * len(times))]
    train_users = {u for u, h in histories.items() if h[0][0] < train_end}
    test_users = {u for u, h in histories.items() if h[-1][0] >= test_start}
    assert len(test_users & train_users) > 0.8 * len(test_users)


def test_more_topics_than_built_in_get_disjoint_made_up_words(tmp_path):
    vocabularies = topic_vocabularies(30, np.random.default_rng(0))
    words = [word for vocabulary in vocabularies for word in vocabulary]
    assert len(vocabularies) == 30 and len(words) == len(set(words))
    assert not set(words) & set(GENERIC_WORDS)
    assert all(word.isalpha() and word[0].isupper() for word in words)

    summary = generate_synthetic(tmp_path, users=20, items=90, topics=30, interactions_per_user=(3, 5))
    _, items = read_rows(tmp_path / "items.csv")
    assert len(items) == 90 and summary["interactions"] >= 60


def test_benchmark_scale_has_all_items_titled(tmp_path):
    summary = generate_synthetic(tmp_path, users=3000, items=10000, interactions_per_user=(30, 40))
    assert summary["interactions"] > 100_000
    _, items = read_rows(tmp_path / "items.csv")
    assert len(items) == 10000 and all(title for _, title in items)


@pytest.mark.parametrize("bad, message", [
    (dict(users=0), "users=0: need at least 1 user"),
    (dict(items=5, topics=10), "items=5: need at least one item per topic (topics=10)"),
    (dict(topics=0), "topics=0: need at least 1 topic"),
    (dict(interactions_per_user=(5, 2)), "interactions_per_user=(5, 2): need 1 <= min <= max"),
    (dict(interactions_per_user=(0, 3)), "interactions_per_user=(0, 3): need 1 <= min <= max"),
    (dict(drift=1.5), "drift=1.5: must lie in [0, 1]"),
])
def test_bad_arguments_are_refused(tmp_path, bad, message):
    with pytest.raises(ConfigError) as error:
        generate_synthetic(tmp_path, **bad)
    assert str(error.value) == message
