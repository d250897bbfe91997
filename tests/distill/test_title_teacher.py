"""The title teacher: TF-IDF title similarity as a cheap stand-in for BIGRec (docs/method.md §2.4-2.5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.data.dataset import PreparedDataset, Split, content_hash
from distill.errors import TeacherError
from distill.teacher import TeacherArtifacts, title_teacher
from distill.teacher.titles import _truncated_svd

TITLES = [
    "Space Invaders Arcade",            # 0  space
    "Galaxy Space Shooter",             # 1  space
    "Cooking Recipes for Beginners",    # 2  cooking
    "Garden Flowers Guide",             # 3  garden
    "Space Shooter Arcade Collection",  # 4  space
    "Cooking Recipes: Bread",           # 5  cooking
    "garden vegetables GUIDE",          # 6  garden (case does not matter)
    "",                                 # 7  no words at all
]
PAD = len(TITLES)
SPACE, COOKING, GARDEN = {0, 1, 4}, {2, 5}, {3, 6}


def split(histories: list[list[int]]) -> Split:
    """Histories oldest first, right-padded with the padding id as the prepared format has them."""
    width = max(len(h) for h in histories)
    seq = np.array([h + [PAD] * (width - len(h)) for h in histories])
    n = len(histories)
    return Split(seq=seq, len_seq=np.array([len(h) for h in histories]), next=np.zeros(n, dtype=np.int64),
                 user=np.arange(n), time=np.arange(n))


@pytest.fixture(scope="module")
def dataset() -> PreparedDataset:
    splits = {
        "train": split([[0, 1], [2], [3], [2, 3], [3, 2], [7]]),
        "val": split([[5, 2]]),
        "test": split([[6]]),
    }
    item_ids = [f"i{i}" for i in range(PAD)]
    return PreparedDataset(item_ids=item_ids, titles=TITLES, user_ids=["u"],
                           stats={"content_hash": content_hash(item_ids, TITLES, splits)}, **splits)


def test_same_topic_items_rank_first(dataset):
    teacher = title_teacher(dataset, k=5)
    train = teacher.ids["train"]
    assert train[0, 0] == 4                            # Space Invaders, Galaxy Space Shooter -> space
    assert train[1, 0] == 5                            # cooking -> the other recipe title
    assert train[2, 0] == 6                            # garden -> the other garden guide
    assert train[3, 0] == 6 and train[4, 0] == 5       # the latest item weighs more than the older one
    assert not COOKING & set(teacher.ids["val"][0])  # both cooking items seen, ranked after the top 5
    assert teacher.ids["test"][0, 0] == 3


def test_history_items_rank_last_unless_asked(dataset):
    kept = title_teacher(dataset, k=8, exclude_history=False)
    # Distances come from |q|^2 + |x|^2 - 2 q.x in float32: an identical vector is sqrt(float32
    # rounding) ~ 3e-4 away, depending on the BLAS kernel, not 0 exactly.
    assert kept.ids["train"][1, 0] == 2 and kept.distances["train"][1, 0] == pytest.approx(0, abs=1e-3)
    excluded = title_teacher(dataset, k=8)
    assert list(excluded.ids["train"][0, -2:]) in ([0, 1], [1, 0])  # seen items after all others


def test_unrelated_and_wordless_items_are_equally_far(dataset):
    teacher = title_teacher(dataset, k=8)
    ids, distances = teacher.ids["train"][1], teacher.distances["train"][1]  # history: cooking item 2
    unrelated = distances[np.isin(ids, list(SPACE | GARDEN | {7}))]
    np.testing.assert_allclose(unrelated, np.sqrt(2), rtol=1e-6)
    assert distances[list(ids).index(5)] < np.sqrt(2)


def test_shapes_dtypes_and_ascending_distances(dataset):
    teacher = title_teacher(dataset, k=4, dim=256)
    assert teacher.splits == ["train", "val", "test"] and teacher.k == 4
    for name, rows in (("train", 6), ("val", 1), ("test", 1)):
        assert teacher.ids[name].shape == teacher.distances[name].shape == (rows, 4)
        assert teacher.ids[name].dtype == np.int64 and teacher.distances[name].dtype == np.float32
        assert (np.diff(teacher.distances[name], axis=1) >= 0).all()
        assert all(len(set(row)) == 4 for row in teacher.ids[name])
    vocabulary = 15  # distinct lower-cased words in TITLES, fewer than dim: exact TF-IDF is kept
    assert teacher.item_embeddings.shape == (PAD, vocabulary) and teacher.dim == vocabulary
    norms = np.linalg.norm(teacher.item_embeddings, axis=1)
    np.testing.assert_allclose(norms, [1] * 7 + [0], atol=1e-6)
    assert teacher.meta["teacher"]["kind"] == "titles"


def test_reduced_dimension_keeps_topics_and_is_deterministic(dataset):
    first = title_teacher(dataset, k=3, dim=3, batch=2)  # 3 < vocabulary: seeded truncated SVD
    second = title_teacher(dataset, k=3, dim=3, batch=4)
    assert first.dim == 3
    assert first.ids["train"][0, 0] == 4 and first.ids["train"][2, 0] == 6
    for name in first.splits:
        np.testing.assert_array_equal(first.ids[name], second.ids[name])
        np.testing.assert_allclose(first.distances[name], second.distances[name], atol=1e-6)
    np.testing.assert_array_equal(first.item_embeddings, second.item_embeddings)


def test_round_trips_through_the_artifact_format(dataset, tmp_path):
    teacher = title_teacher(dataset, k=3, splits=("train", "test"))
    teacher.save(tmp_path / "teacher")
    loaded = TeacherArtifacts.load(tmp_path / "teacher", dataset)
    assert loaded.splits == ["train", "test"]
    np.testing.assert_array_equal(loaded.ids["train"], teacher.ids["train"])


def test_bad_arguments_are_refused(dataset):
    with pytest.raises(TeacherError, match="k must be in 1..8"):
        title_teacher(dataset, k=9)
    wordless = PreparedDataset(item_ids=dataset.item_ids, titles=["", "!!"] + [""] * 6, user_ids=["u"],
                               stats=dataset.stats, train=dataset.train, val=dataset.val, test=dataset.test)
    with pytest.raises(TeacherError, match="no item title contains a word"):
        title_teacher(wordless, k=3)


def test_randomized_svd_recovers_a_low_rank_matrix():
    # 40 x 60 of rank 4: the sketch (4 + oversampling columns) is rank-deficient, and U*S must
    # still reproduce the matrix's geometry exactly: (U S)(U S)^T = A A^T.
    generator = torch.Generator().manual_seed(3)
    left, right = (torch.rand(40, 4, generator=generator, dtype=torch.float64),
                   torch.rand(4, 60, generator=generator, dtype=torch.float64))
    matrix = left @ right
    reduced = _truncated_svd(matrix.to_sparse(), 4)
    assert reduced.shape == (40, 4)
    torch.testing.assert_close(reduced @ reduced.T, matrix @ matrix.T)


def test_title_teacher_writes_the_distance_to_the_true_next_item(dataset, tmp_path):
    artifacts = title_teacher(dataset, k=3, exclude_history=False)
    for split in ("train", "val", "test"):
        target = artifacts.target_distances[split]
        assert target.shape == (len(dataset.split(split)),) and np.isfinite(target).all()
        listed = artifacts.ids[split] == dataset.split(split).next[:, None]
        rows, cols = np.nonzero(listed)
        assert np.allclose(target[rows], artifacts.distances[split][rows, cols], atol=1e-5)
    artifacts.save(tmp_path / "t")
    loaded = TeacherArtifacts.load(tmp_path / "t", dataset)
    assert np.array_equal(loaded.target_distances["train"], artifacts.target_distances["train"])
