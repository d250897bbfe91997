"""A budget curve as one study with a real worker: three teacher budgets, the teacher computed once
at the largest and each smaller budget cut from it; every point distils from its own share."""

import pytest

from webapp.studio.models import Run
from tests.factories import poll_study, prepared, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BUDGETS = [0.1, 0.5, 0.25]
STUDY = {"name": "budget curve", "base": {"student": "sasrec", "teacher": {"kind": "titles", "budget_rule": "recent"},
                                          "distill": {"lam": 0.5}, "train": {"epochs": 2}},
         "grid": {"teacher.budget": BUDGETS}}


@pytest.fixture
def study(worker, client, tmp_path):
    from distill.data.synth import generate_synthetic
    generate_synthetic(tmp_path, users=120, items=200, seed=2)
    files = [(name, (tmp_path / name).read_bytes()) for name in ("interactions.csv", "items.csv")]
    dataset = prepared(client, upload(client, name="synthetic", fmt="csv", files=files))
    assert dataset["status"] == "ready", dataset["error"]
    response = client.post("/api/studies/", {**STUDY, "dataset": dataset["id"]}, format="json")
    assert response.status_code == 201, response.content
    body = poll_study(client, response.json()["id"])
    assert body["status"] == "succeeded", body["children"]
    return body, dataset


def test_one_teacher_computation_and_each_point_ranks_its_own_budget(study):
    import math

    from distill.teacher import TeacherArtifacts
    from webapp.studio.stages import teacher_dir
    body, dataset = study
    assert body["teacher_computations"] == 1
    instances = dataset["stats"]["instances"]["train"]
    masks = []
    for run in Run.objects.filter(study_id=body["id"]).order_by("study_index"):
        artifacts = TeacherArtifacts.load(teacher_dir(run))
        budget = run.config["teacher"]["budget"]
        assert artifacts.meta["budget"]["ranked"] == math.ceil(budget * instances)
        masks.append(artifacts.ranked_rows("train"))
    small, large, middle = masks
    assert (small <= middle).all() and (middle <= large).all()       # nested: prefixes of one order
