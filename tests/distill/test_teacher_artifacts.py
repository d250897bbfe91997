"""The teacher-artifacts contract and the reference-file importer (docs/method.md §2.4-2.5, §4, §5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from distill.data.dataset import SPLITS, PreparedDataset, Split, content_hash
from distill.errors import TeacherError
from distill.teacher import TeacherArtifacts, import_reference

NUM_ITEMS = 6
ROWS = {"train": 5, "val": 2, "test": 2}
K = 3


def make_dataset(seed: int = 0) -> PreparedDataset:
    rng = np.random.default_rng(seed)
    splits = {}
    for name in SPLITS:
        n = ROWS[name]
        splits[name] = Split(seq=rng.integers(0, NUM_ITEMS, (n, 4)), len_seq=np.full(n, 4),
                             next=rng.integers(0, NUM_ITEMS, n), user=np.arange(n), time=np.arange(n))
    item_ids = [f"i{i}" for i in range(NUM_ITEMS)]
    titles = [f"title {i}" for i in range(NUM_ITEMS)]
    return PreparedDataset(item_ids=item_ids, titles=titles, user_ids=[str(u) for u in range(5)],
                           stats={"content_hash": content_hash(item_ids, titles, splits)}, **splits)


@pytest.fixture
def dataset(tmp_path) -> PreparedDataset:
    """Saved and loaded again, so the hash is the one a later stage would see."""
    (tmp_path / "data").mkdir()
    make_dataset().save(tmp_path / "data")
    return PreparedDataset.load(tmp_path / "data")


def teacher_arrays(splits=SPLITS, k=K):
    rng = np.random.default_rng(1)
    ids = {s: np.stack([rng.permutation(NUM_ITEMS)[:k] for _ in range(ROWS[s])]) for s in splits}
    distances = {s: np.sort(rng.random((ROWS[s], k)), axis=1).astype(np.float32) for s in splits}
    return ids, distances


def embeddings(rows=NUM_ITEMS, dim=8):
    return np.random.default_rng(2).standard_normal((rows, dim)).astype(np.float32)


# --- TeacherArtifacts: round trip -------------------------------------------------------------

def test_save_load_round_trip(dataset, tmp_path):
    ids, distances = teacher_arrays()
    built = TeacherArtifacts.build(dataset, ids, distances, embeddings(), teacher={"kind": "test"})
    out = tmp_path / "teacher"
    built.save(out)

    assert sorted(p.name for p in out.iterdir()) == ["item_embeddings.safetensors", "ranks.safetensors",
                                                     "teacher.json"]
    meta = json.loads((out / "teacher.json").read_text())
    assert meta == {"k": K, "dim": 8, "num_items": NUM_ITEMS, "dataset_hash": dataset.content_hash,
                    "splits": ["train", "val", "test"], "teacher": {"kind": "test"}, "format_version": 1}

    loaded = TeacherArtifacts.load(out, dataset)
    assert (loaded.k, loaded.dim, loaded.splits) == (K, 8, ["train", "val", "test"])
    for split in SPLITS:
        assert loaded.ids[split].dtype == np.int64 and loaded.distances[split].dtype == np.float32
        np.testing.assert_array_equal(loaded.ids[split], ids[split])
        np.testing.assert_array_equal(loaded.distances[split], distances[split])
    np.testing.assert_array_equal(loaded.item_embeddings, embeddings())
    assert TeacherArtifacts.load(out).meta == meta  # no dataset: self-consistency only


def test_train_only_without_embeddings(dataset, tmp_path):
    ids, distances = teacher_arrays(splits=("train",))
    TeacherArtifacts.build(dataset, ids, distances, None, teacher={"kind": "test"}).save(tmp_path / "t")
    assert not (tmp_path / "t" / "item_embeddings.safetensors").exists()
    loaded = TeacherArtifacts.load(tmp_path / "t", dataset)
    assert loaded.dim is None and loaded.item_embeddings is None and loaded.splits == ["train"]


# --- TeacherArtifacts: validation --------------------------------------------------------------

def build(dataset, ids=None, distances=None, item_embeddings=None):
    default_ids, default_distances = teacher_arrays()
    return TeacherArtifacts.build(dataset, ids or default_ids, distances or default_distances,
                                  item_embeddings, teacher={"kind": "test"})


def test_missing_train_is_refused(dataset):
    ids, distances = teacher_arrays(splits=("val", "test"))
    with pytest.raises(TeacherError, match="must rank every training instance"):
        build(dataset, ids, distances)


def test_row_count_must_match_the_split(dataset):
    ids, distances = teacher_arrays()
    ids["val"], distances["val"] = ids["val"][:1], distances["val"][:1]
    with pytest.raises(TeacherError, match="val_ids has 1 rows but the prepared dataset has 2 val instances"):
        build(dataset, ids, distances)


def test_k_must_agree_across_splits(dataset):
    ids, distances = teacher_arrays()
    ids["test"], distances["test"] = ids["test"][:, :2], distances["test"][:, :2]
    with pytest.raises(TeacherError, match=r"test_ids has shape \[2, 2\] but K is 3"):
        build(dataset, ids, distances)


def test_distances_must_match_ids(dataset):
    ids, distances = teacher_arrays()
    distances["train"] = distances["train"][:, :2]
    with pytest.raises(TeacherError, match=r"train_dist has shape \[5, 2\] but train_ids has \[5, 3\]"):
        build(dataset, ids, distances)


@pytest.mark.parametrize("bad_id", [-1, NUM_ITEMS])  # NUM_ITEMS is the padding id, never a candidate
def test_ids_must_be_items(dataset, bad_id):
    ids, distances = teacher_arrays()
    ids["train"][3, 1] = bad_id
    with pytest.raises(TeacherError, match=rf"train_ids row 3, column 1 is item {bad_id}, outside 0..5"):
        build(dataset, ids, distances)


def test_nan_distances_are_refused(dataset):
    ids, distances = teacher_arrays()
    distances["val"][1, 2] = np.nan
    with pytest.raises(TeacherError, match="val_dist: row 1, column 2 is nan, not a finite number"):
        build(dataset, ids, distances)


def test_embedding_rows_must_match_items(dataset):
    with pytest.raises(TeacherError, match="7 embedding rows but the dataset has 6 items"):
        build(dataset, item_embeddings=embeddings(rows=NUM_ITEMS + 1))


def test_infinite_embeddings_are_refused(dataset):
    table = embeddings()
    table[2, 0] = np.inf
    with pytest.raises(TeacherError, match="embeddings: row 2, column 0 is inf"):
        build(dataset, item_embeddings=table)


def test_other_dataset_is_refused_with_the_fix(dataset, tmp_path):
    build(dataset).save(tmp_path / "t")
    other = make_dataset(seed=5)
    with pytest.raises(TeacherError, match="computed for another dataset") as error:
        TeacherArtifacts.load(tmp_path / "t", other)
    assert str(tmp_path / "t" / "teacher.json") in str(error.value)
    assert "Run the teacher on this prepared dataset" in str(error.value)


def test_unreadable_ranks_name_the_file(dataset, tmp_path):
    build(dataset).save(tmp_path / "t")
    (tmp_path / "t" / "ranks.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(TeacherError, match=r"ranks\.safetensors: cannot read"):
        TeacherArtifacts.load(tmp_path / "t", dataset)


def test_tampered_k_is_refused_on_load(dataset, tmp_path):
    build(dataset).save(tmp_path / "t")
    ids, distances = teacher_arrays(k=2)
    save_file({f"{s}_{kind}": a[s] for kind, a in (("ids", ids), ("dist", distances)) for s in SPLITS},
              str(tmp_path / "t" / "ranks.safetensors"))
    with pytest.raises(TeacherError, match="but K is 3"):
        TeacherArtifacts.load(tmp_path / "t")


def test_missing_directory_says_what_to_run(tmp_path):
    with pytest.raises(TeacherError, match="not teacher artifacts"):
        TeacherArtifacts.load(tmp_path / "nowhere")


def test_failed_save_writes_nothing(dataset, tmp_path):
    artifacts = build(dataset)
    artifacts.ids["train"][0, 0] = NUM_ITEMS + 3  # broken after validation, caught again on save
    with pytest.raises(TeacherError, match="outside 0..5"):
        artifacts.save(tmp_path / "t")
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


# --- import_reference ----------------------------------------------------------------------------

class Opaque:
    """Any class instance: torch.load(weights_only=True) must refuse to rebuild it."""


def write_reference(folder, ranks=None, confidence=None, embedding=None):
    ids, distances = teacher_arrays(splits=("train",))
    np.savetxt(folder / "myrank_train.txt", ids["train"] if ranks is None else ranks)  # floats: 1.0e+00
    np.savetxt(folder / "confidence_train.txt", distances["train"] if confidence is None else confidence)
    torch.save(torch.from_numpy(embeddings()) if embedding is None else embedding,
               folder / "all_embeddings.pt")
    return folder / "myrank_train.txt", folder / "confidence_train.txt", folder / "all_embeddings.pt"


def test_import_reference(dataset, tmp_path):
    files = write_reference(tmp_path)
    out = tmp_path / "teacher"
    imported = import_reference(dataset, *files, out)

    ids, distances = teacher_arrays(splits=("train",))
    loaded = TeacherArtifacts.load(out, dataset)
    np.testing.assert_array_equal(loaded.ids["train"], ids["train"])
    np.testing.assert_allclose(loaded.distances["train"], distances["train"], rtol=1e-6)
    np.testing.assert_array_equal(loaded.item_embeddings, embeddings())
    assert loaded.meta == imported.meta
    assert (loaded.k, loaded.dim, loaded.splits) == (K, 8, ["train"])
    assert loaded.meta["teacher"]["kind"] == "reference"


def test_import_reference_keeps_the_first_k_columns_and_embeddings_are_optional(dataset, tmp_path):
    ranks, confidence, _ = write_reference(tmp_path)
    imported = import_reference(dataset, ranks, confidence, None, tmp_path / "teacher", k=2)
    ids, _ = teacher_arrays(splits=("train",))
    np.testing.assert_array_equal(imported.ids["train"], ids["train"][:, :2])
    assert imported.dim is None and imported.k == 2


def broken_ids(row, col, value):
    ids, _ = teacher_arrays(splits=("train",))
    ids = ids["train"].astype(np.float64)
    ids[row, col] = value
    return ids


@pytest.mark.parametrize("files, message", [
    ({"ranks": np.zeros((4, K))},
     "myrank_train.txt: 4 rows but the prepared dataset has 5 training instances"),
    ({"ranks": broken_ids(1, 2, NUM_ITEMS)},
     "myrank_train.txt: row 2, column 3 is item 6 but the prepared dataset has 6 items"),
    ({"ranks": broken_ids(0, 1, 1.5)},
     "myrank_train.txt: row 1, column 2 is 1.5, not an item id"),
    ({"confidence": np.zeros((5, K - 1))},
     "confidence_train.txt: shape 5 x 2 but myrank_train.txt is 5 x 3"),
    ({"confidence": np.full((5, K), np.nan)},
     "confidence_train.txt: row 1, column 1 is nan"),
    ({"embedding": torch.zeros(NUM_ITEMS + 1, 4)},
     "all_embeddings.pt: 7 rows but the prepared dataset has 6 items"),
    ({"embedding": torch.zeros(NUM_ITEMS, dtype=torch.int64)},
     r"all_embeddings.pt: a torch.int64 tensor of shape \[6\]"),
    ({"embedding": {"embeddings": torch.zeros(NUM_ITEMS, 4), "names": {"a", "b"}}},
     "all_embeddings.pt: holds a dict, not a tensor"),
    ({"embedding": {"embeddings": torch.zeros(NUM_ITEMS, 4), "extra": Opaque()}},
     "Opaque, which is refused because unpickling it could run code"),
], ids=["rows", "range", "fraction", "shapes", "nan", "embedding-rows", "embedding-1d", "dict",
        "pickled-object"])
def test_import_reference_refuses(dataset, tmp_path, files, message):
    paths = write_reference(tmp_path, **files)
    out = tmp_path / "teacher"
    with pytest.raises(TeacherError, match=message):
        import_reference(dataset, *paths, out)
    assert not out.exists()


def test_import_reference_refuses_garbage_files(dataset, tmp_path):
    ranks, confidence, embedding = write_reference(tmp_path)
    out = tmp_path / "teacher"
    embedding.write_bytes(b"\x00 definitely not a torch file")
    with pytest.raises(TeacherError, match=r"all_embeddings.pt: cannot be loaded .*weights_only=True"):
        import_reference(dataset, ranks, confidence, embedding, out)
    ranks.write_text("1 2 3\n4 five 6\n")
    with pytest.raises(TeacherError, match="myrank_train.txt: not a whitespace-separated table of numbers"):
        import_reference(dataset, ranks, confidence, embedding, out)
    assert not out.exists()
