"""The reliability report (distill/report.py) on hand-built top-k lists whose numbers are worked out
below, the teacher's partial coverage, the confidence helper and a real student's top-k."""

import json
import math

import numpy as np
import pytest
import torch

from distill.config import TrainConfig
from distill.data.dataset import PreparedDataset, Split
from distill.report import build_report, popularity_buckets, student_topk, teacher_confidence
from distill.students import build_student
from factories import chain_dataset, small_teacher

L3 = 1 / math.log2(3)   # NDCG of a hit at rank 2
L4 = 1 / math.log2(4)   # rank 3: 0.5

# Training targets: item 0 five times, item 1 three times, items 2 and 3 once (10 interactions):
# head = {0} (0% before it), torso = {1} (50% before), tail = {2, 3} (80%, 90%) and the unseen 4..9.
TRAIN_NEXT = [0] * 5 + [1] * 3 + [2, 3]
TARGETS = [0, 1, 2, 5, 0]            # buckets: head, torso, tail, tail, head
LEN_SEQ = [1, 2, 4, 10, 25]          # history buckets: 1-2, 1-2, 3-4, 10-19, 20+
TEACHER = [[0, 4, 5], [3, 1, 4], [7, 8, 9], [5, 6, 7], [1, 2, 3]]     # hits rows 0 (rank 1), 1 (2), 3 (1)
BASELINE = [[1, 2, 3], [1, 0, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]]    # hits rows 1 (1), 2 (3), 4 (1)
DISTILLED = [[0, 1, 4], [4, 3, 1], [2, 7, 0], [5, 0, 6], [1, 0, 2]]   # hits every row: ranks 1, 3, 1, 1, 2


def split(next_, len_seq, max_len):
    n = len(next_)
    return Split(seq=np.full((n, max_len), 10, dtype=np.int64), len_seq=np.array(len_seq, dtype=np.int64),
                 next=np.array(next_, dtype=np.int64), user=np.arange(n, dtype=np.int64),
                 time=np.arange(n, dtype=np.int64))


@pytest.fixture
def dataset():
    return PreparedDataset(item_ids=[str(i) for i in range(10)], titles=[f"item {i}" for i in range(10)],
                           user_ids=[str(u) for u in range(10)], train=split(TRAIN_NEXT, [1] * 10, 25),
                           val=split([0], [1], 25), test=split(TARGETS, LEN_SEQ, 25), stats={"content_hash": "x"})


@pytest.fixture
def lists():
    return {"teacher": np.array(TEACHER), "baseline": np.array(BASELINE), "distilled": np.array(DISTILLED)}


@pytest.fixture
def report(dataset, lists):
    return build_report(dataset, lists, teacher_confidence=np.array([0.9, 0.1, 0.5, 0.7, 0.3]), k=3, bins=2)


def by_label(section):
    return {row["bucket"]: row for row in section["buckets"]}


def test_hits_split_teacher_and_student_hits_before_and_after(report):
    hits = report["hits"]
    assert (hits["k"], hits["n"]) == (3, 5)
    assert hits["teacher_only"] == {"baseline": 0.4, "distilled": 0.0}
    assert hits["student_only"] == {"baseline": 0.4, "distilled": 0.4}
    assert hits["both"] == {"baseline": 0.2, "distilled": 0.6}
    assert hits["neither"] == {"baseline": 0.0, "distilled": 0.0}


def test_overlap_is_the_mean_shared_share_of_the_teacher_list(report):
    # baseline shares 0+1+0+0+2 = 3 of 15 teacher items, distilled 2+3+1+2+2 = 10
    assert report["overlap"] == {"k": 3, "n": 5, "baseline": 0.2, "distilled": round(10 / 15, 6)}


def test_popularity_buckets_by_cumulative_interaction_share():
    buckets, share = popularity_buckets(np.bincount(TRAIN_NEXT, minlength=10))
    assert buckets.tolist() == [0, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    assert share.tolist() == pytest.approx([0.5, 0.3, 0.2])


def test_by_popularity_metrics_and_gain_per_bucket(report):
    rows = by_label(report["by_popularity"])
    assert [r["bucket"] for r in report["by_popularity"]["buckets"]] == ["head", "torso", "tail"]
    head, torso, tail = rows["head"], rows["torso"], rows["tail"]
    assert (head["n"], torso["n"], tail["n"]) == (2, 1, 2)
    assert (head["items"], torso["items"], tail["items"]) == (1, 1, 8)
    assert head["roles"]["baseline"] == {"n": 2, "hr": 0.5, "ndcg": 0.5}
    assert head["roles"]["distilled"]["ndcg"] == pytest.approx((1 + L3) / 2, abs=1e-6)
    assert head["roles"]["teacher"] == {"n": 2, "hr": 0.5, "ndcg": 0.5}
    assert head["gain_pct"]["hr"] == 100.0
    assert head["gain_pct"]["ndcg"] == pytest.approx(100 * ((1 + L3) - 1), abs=1e-4)
    assert torso["roles"]["baseline"]["ndcg"] == 1.0 and torso["gain_pct"]["ndcg"] == -50.0
    assert tail["roles"]["baseline"] == {"n": 2, "hr": 0.5, "ndcg": 0.25}
    assert tail["roles"]["distilled"] == {"n": 2, "hr": 1.0, "ndcg": 1.0}
    assert tail["gain_pct"] == {"hr": 100.0, "ndcg": 300.0}


def test_by_history_buckets_leave_out_empty_ones(report):
    rows = by_label(report["by_history"])
    assert list(rows) == ["1-2", "3-4", "10-19", "20+"]               # 5-9 is empty
    assert [rows[b]["n"] for b in rows] == [2, 1, 1, 1]
    assert rows["1-2"]["roles"]["baseline"] == {"n": 2, "hr": 0.5, "ndcg": 0.5}       # rows 0, 1
    assert rows["1-2"]["roles"]["distilled"]["ndcg"] == pytest.approx(0.75)
    assert rows["1-2"]["gain_pct"]["ndcg"] == 50.0
    assert rows["3-4"]["roles"]["baseline"]["ndcg"] == L4 and rows["3-4"]["gain_pct"]["ndcg"] == 100.0
    assert rows["10-19"]["gain_pct"] == {"hr": None, "ndcg": None}                  # baseline misses row 3


def test_teacher_reliability_bins_by_confidence(report):
    rel = report["teacher_reliability"]
    # sorted confidences 0.1 (row 1, hit) 0.3 (row 4, miss) | 0.5 (row 2, miss) 0.7 (row 3, hit) 0.9 (row 0, hit)
    assert [b["n"] for b in rel["bins"]] == [2, 3]
    assert [b["confidence"] for b in rel["bins"]] == [0.2, 0.7]
    assert [b["hr"] for b in rel["bins"]] == [0.5, round(2 / 3, 6)]
    assert (rel["bins"][0]["confidence_min"], rel["bins"][1]["confidence_max"]) == (0.1, 0.9)
    assert rel["n"] == 5 and rel["hr"] == 0.6


def test_beyond_accuracy_coverage_popularity_and_tail_share(report):
    base, teacher = report["beyond_accuracy"]["baseline"], report["beyond_accuracy"]["teacher"]
    # baseline recommends {0,1,2,3}; slot popularities sum to 5 + 9 * 4 = 41; tail slots 2 + 1 * 4 = 6
    assert base == {"k": 3, "n": 5, "coverage": 0.4, "arp": round(41 / 15, 6), "tail_share": 0.4}
    assert teacher == {"k": 3, "n": 5, "coverage": 1.0, "arp": round(14 / 15, 6), "tail_share": 0.8}


def test_report_is_json_and_rounded(report):
    assert json.loads(json.dumps(report)) == report
    assert (report["k"], report["rows"], report["roles"]) == (3, 5, ["teacher", "baseline", "distilled"])
    assert report["by_popularity"]["buckets"][0]["roles"]["distilled"]["ndcg"] == round((1 + L3) / 2, 6)
    assert report["missing"] == {} and report["notes"]


def test_teacher_with_fewer_rows_and_columns_uses_what_it_has(dataset, lists):
    lists["teacher"] = lists["teacher"][:3, :2]            # a --limit 3 smoke teacher keeping 2 items
    report = build_report(dataset, lists, k=3)
    assert (report["teacher_rows"], report["teacher_k"]) == (3, 2)
    # top-2 on rows 0..2: teacher hits rows 0 and 1, the baseline only row 1
    assert report["hits"]["n"] == 3 and report["hits"]["k"] == 2
    assert report["hits"]["teacher_only"]["baseline"] == round(1 / 3, 6)
    assert report["hits"]["both"]["baseline"] == round(1 / 3, 6)
    assert report["hits"]["neither"]["baseline"] == round(1 / 3, 6)
    assert report["overlap"]["baseline"] == round(1 / 6, 6)
    head = by_label(report["by_popularity"])["head"]
    assert head["roles"]["teacher"] == {"n": 1, "hr": 1.0, "ndcg": 1.0} and head["roles"]["baseline"]["n"] == 2
    assert report["beyond_accuracy"]["teacher"]["n"] == 3 and report["beyond_accuracy"]["teacher"]["k"] == 2
    assert any("first 3 of 5" in note for note in report["notes"])
    assert any("fewer than k=3" in note for note in report["notes"])
    assert "teacher_reliability" in report["missing"]


def test_without_a_teacher_its_sections_are_null_with_a_reason(dataset, lists):
    del lists["teacher"]
    report = build_report(dataset, lists, k=3)
    assert report["hits"] is None and report["overlap"] is None and report["teacher_reliability"] is None
    assert set(report["missing"]) == {"hits", "overlap", "teacher_reliability"}
    assert "teacher" not in report["beyond_accuracy"]


def test_a_student_list_must_cover_every_test_row(dataset, lists):
    lists["baseline"] = lists["baseline"][:4]
    with pytest.raises(ValueError, match="baseline"):
        build_report(dataset, lists, k=3)


def test_teacher_confidence_from_distances():
    dist = np.array([[0.0, 1.0], [2.0, 2.0]], dtype=np.float32)
    assert teacher_confidence(dist).tolist() == [0.0, -2.0]
    assert teacher_confidence({"test_dist": dist}, method="softmax") == pytest.approx([1 / (1 + math.exp(-1)), 0.5])
    assert teacher_confidence({"train_dist": dist}) is None


def test_teacher_confidence_from_artifacts():
    data = chain_dataset(num_items=20, users=10, length=6)
    artifacts = small_teacher(data, k=4)
    assert np.array_equal(teacher_confidence(artifacts), -artifacts.distances["test"][:, 0].astype(np.float64))


def test_student_topk_is_the_argsort_of_the_models_scores():
    torch.manual_seed(0)
    data = chain_dataset(num_items=30, users=12, length=8, max_len=6)
    model = build_student(TrainConfig(student="sasrec"), data.num_items, data.max_len)
    top = student_topk(model, data.test, k=5, batch_size=4)          # several batches
    model.eval()
    with torch.no_grad(), model.item_embedding.frozen_table():
        scores = model(torch.as_tensor(data.test.seq), torch.as_tensor(data.test.len_seq)).numpy()
    assert top.shape == (len(data.test), 5) and top.dtype == np.int64
    assert np.array_equal(top, np.argsort(-scores, axis=1, kind="stable")[:, :5])
