"""End-to-end quality checks on real data and with teachers of known quality (marked slow).

Each prints the numbers it compares, so the run log shows what a user would see.
"""

from pathlib import Path

import numpy as np
import pytest

from distill.config import TrainConfig
from distill.data import PrepareOptions, PreparedDataset, prepare_dataset
from distill.data.synth import generate_synthetic
from distill.evaluate import most_popular_metrics, teacher_metrics
from distill.teacher import TeacherArtifacts, title_teacher
from distill.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> PreparedDataset:
    """A small, sparse synthetic catalogue (250 users, ~1,400 items, ~7,700 training instances):
    the regime where the paper's students are weak and a teacher has most to give."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root / "csv", users=250, items=1500, seed=1)
    return prepare_dataset("csv", root / "csv" / "interactions.csv", root / "data",
                           items=root / "csv" / "items.csv", options=PrepareOptions())


def future_teacher(dataset: PreparedDataset, k: int = 10, seed: int = 0) -> TeacherArtifacts:
    """An informative teacher: its list is the user's actual next k items (the true next first),
    padded with random items where the user's future runs out; item embeddings are the titles'
    TF-IDF vectors. It knows more than the student can infer from one window."""
    rng = np.random.default_rng(seed)
    order = np.concatenate([dataset.split(s).time for s in ("train", "val", "test")])
    users = np.concatenate([dataset.split(s).user for s in ("train", "val", "test")])
    targets = np.concatenate([dataset.split(s).next for s in ("train", "val", "test")])
    position = np.lexsort((order, users))              # each user's instances in time order
    ranked_users, ranked_targets = users[position], targets[position]
    ids_all = rng.integers(0, dataset.num_items, (len(targets), k))
    for step in range(k):
        later = np.arange(len(position)) + step
        valid = later < len(position)
        valid[valid] &= ranked_users[later[valid]] == ranked_users[valid]
        ids_all[position[valid], step] = ranked_targets[later[valid]]
    bounds = np.cumsum([0] + [len(dataset.split(s)) for s in ("train", "val", "test")])
    ids = {s: ids_all[bounds[i]:bounds[i + 1]] for i, s in enumerate(("train", "val", "test"))}
    dist = {s: np.tile(0.1 * np.arange(k, dtype=np.float32), (len(v), 1)) for s, v in ids.items()}
    embeddings = title_teacher(dataset, k=k).item_embeddings
    return TeacherArtifacts.build(dataset, ids, dist, embeddings, {"kind": "future (test oracle)"})


def random_teacher(dataset: PreparedDataset, k: int = 10, dim: int = 64, seed: int = 0) -> TeacherArtifacts:
    rng = np.random.default_rng(seed)
    ids = {s: rng.integers(0, dataset.num_items, (len(dataset.split(s)), k)) for s in ("train", "val", "test")}
    dist = {s: np.sort(rng.random(v.shape, dtype=np.float32), 1) for s, v in ids.items()}
    emb = rng.standard_normal((dataset.num_items, dim), dtype=np.float32)
    return TeacherArtifacts.build(dataset, ids, dist, emb, {"kind": "random"})


def test_sasrec_on_movielens_100k_beats_most_popular(ml100k, tmp_path):
    dataset = prepare_dataset("movielens", ml100k, tmp_path / "ml-100k")
    popular = most_popular_metrics(dataset.train, dataset.test, dataset.num_items)
    result = train(dataset, TrainConfig(student="sasrec", epochs=8))
    print(f"\nML-100k test ndcg@20: most popular {popular['ndcg@20']:.4f}, SASRec {result.test['ndcg@20']:.4f} "
          f"(hr@20 {popular['hr@20']:.4f} vs {result.test['hr@20']:.4f}, best epoch {result.best_epoch} of 8)")
    assert result.test["ndcg@20"] > 1.5 * popular["ndcg@20"]
    assert result.test["hr@20"] > popular["hr@20"]


def test_informative_teacher_makes_the_student_better(synthetic):
    teacher = future_teacher(synthetic)
    hits = teacher_metrics(teacher.ids["train"], synthetic.train.next)["hr@10"]
    assert hits > 0.9                                    # far above chance (10 / ~1,400)
    baseline, distilled = [], []
    for seed in (0, 1):
        config = TrainConfig(student="sasrec", epochs=40, seed=seed)
        baseline.append(train(synthetic, config).test["ndcg@20"])
        distilled.append(train(synthetic, config, teacher).test["ndcg@20"])
    print(f"\ninformative teacher, test ndcg@20 per seed: baseline {baseline}, distilled {distilled}")
    assert np.mean(distilled) > np.mean(baseline)


def test_random_teacher_hurts_and_lam_auto_keeps_the_baseline_student(synthetic):
    result = train(synthetic, TrainConfig(student="sasrec", epochs=40, lam="auto"), random_teacher(synthetic))
    choice = result.lam_auto
    val, test = choice["val_ndcg@20"], choice["test_ndcg@20"]
    print(f"\nrandom teacher, ndcg@20 per lambda_d: val {val}, test {test}; lam=auto chose {result.lam}")
    assert test["0.7"] < test["0.0"]                      # the faithful method at lambda_d=0.7 loses
    assert result.val["ndcg@20"] >= val["0.0"]           # never worse than the baseline on val
    assert abs(result.test["ndcg@20"] - test["0.0"]) <= 0.1 * test["0.0"]
