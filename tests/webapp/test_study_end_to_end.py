"""A study end to end with a real worker on a small synthetic catalogue: three points over
lambda_d, one teacher computation for all of them, the best point chosen on val."""

import pytest

from webapp.studio.models import Run, TeacherCacheEntry
from tests.factories import poll_study, prepared, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STUDY = {"name": "lambda sweep", "base": {"student": "sasrec", "teacher": {"kind": "titles"}, "train": {"epochs": 3}},
         "grid": {"distill.lam": [0, 0.3, 0.7]}}


@pytest.fixture
def synthetic(client, tmp_path):
    from distill.data.synth import generate_synthetic
    generate_synthetic(tmp_path, users=150, items=300, seed=1)
    files = [(name, (tmp_path / name).read_bytes()) for name in ("interactions.csv", "items.csv")]
    dataset = prepared(client, upload(client, name="synthetic", fmt="csv", files=files))
    assert dataset["status"] == "ready", dataset["error"]
    return dataset


@pytest.fixture
def study(worker, client, synthetic):
    response = client.post("/api/studies/", {**STUDY, "dataset": synthetic["id"]}, format="json")
    assert response.status_code == 201, response.content
    body = poll_study(client, response.json()["id"])
    assert body["status"] == "succeeded", body["children"]
    return body


def test_every_point_finishes_and_the_teacher_is_computed_once(study):
    assert study["counts"] == {"succeeded": 3}
    assert study["teacher_computations"] == 1
    assert [c["teacher_cached"] for c in study["children"]] == [False, True, True]
    from webapp.studio.stages import run_teacher_key
    keys = {run_teacher_key(run) for run in Run.objects.filter(study_id=study["id"])}
    assert len(keys) == 1 and TeacherCacheEntry.objects.get(key=keys.pop()).hits == 2


def test_the_best_point_is_the_val_argmax_with_its_test_metrics(study):
    val = [c["val"]["ndcg@20"] for c in study["children"]]
    best = study["best"]
    assert best["index"] == val.index(max(val)) and best["selected_on"] == "val"
    assert best["test"]["ndcg@20"] == study["children"][best["index"]]["test"]["ndcg@20"]
    assert 0 <= best["comparison"]["p_value"] <= 1
