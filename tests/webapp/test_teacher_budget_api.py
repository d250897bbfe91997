"""A teacher budget over REST (docs/method.md §2.6): `teacher: {budget}` is checked at creation,
and a study may sweep teacher.budget, every point sharing the teacher computed at the largest."""

import pytest

from webapp.studio.models import Dataset, Run
from tests.factories import ready_dataset

pytestmark = pytest.mark.django_db

BASE = {"student": "sasrec", "teacher": {"kind": "titles"}, "train": {"epochs": 2}}


@pytest.fixture
def ready(user):
    dataset = ready_dataset(user)
    Dataset.objects.filter(pk=dataset.pk).update(stats={"instances": {"train": 1000, "val": 100, "test": 100}})
    dataset.refresh_from_db()
    return dataset


@pytest.fixture(autouse=True)
def unsent(monkeypatch):
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda *args: None)


def create_run(client, dataset, teacher):
    return client.post("/api/runs/", {"dataset": dataset.pk, "name": "budget", **BASE, "teacher": teacher},
                       format="json")


def test_a_run_takes_a_budget_and_its_rule(client, ready):
    response = create_run(client, ready, {"kind": "titles", "budget": 0.1, "budget_rule": "recent"})
    assert response.status_code == 201, response.content
    assert response.json()["config"]["teacher"] == {"kind": "titles", "budget": 0.1, "budget_rule": "recent"}


@pytest.mark.parametrize("budget,fragment", [(0, "ranks no instance"), (1.5, "not a fraction in (0, 1]"),
                                             (1001, "above the 1,000 training instances"), ("all", "got str")])
def test_a_bad_budget_is_a_400_naming_it(client, ready, budget, fragment):
    response = create_run(client, ready, {"kind": "titles", "budget": budget})
    assert response.status_code == 400 and fragment in str(response.json()["teacher"])
    assert not Run.objects.exists()


def test_an_unknown_rule_is_a_400_listing_the_rules(client, ready):
    response = create_run(client, ready, {"kind": "semantic", "budget": 10, "budget_rule": "oldest"})
    assert response.status_code == 400 and "random, recent, uncertain" in str(response.json()["teacher"])


def test_the_teacher_cache_key_includes_the_budget(user, ready):
    from webapp.studio.stages import teacher_key
    keys = {teacher_key(ready, {"kind": "titles", "k": 20, **extra})
            for extra in ({}, {"budget": 100}, {"budget": 200}, {"budget": 100, "budget_rule": "recent"})}
    assert len(keys) == 4


def test_a_study_sweeps_the_budget_sharing_the_teacher_at_the_largest(client, ready):
    response = client.post("/api/studies/", {"dataset": ready.pk, "name": "budget curve", "base": BASE,
                                             "grid": {"teacher.budget": [100, 0.5, 300]}}, format="json")
    assert response.status_code == 201, response.content
    runs = Run.objects.filter(study_id=response.json()["id"]).order_by("study_index")
    assert [r.config["teacher"]["budget"] for r in runs] == [100, 0.5, 300]
    assert {r.config["teacher"]["budget_from"] for r in runs} == {0.5}            # 500 of 1,000 instances


@pytest.mark.parametrize("grid,fragment", [({"teacher.k": [10, 20]}, "only teacher.budget may vary"),
                                           ({"teacher.budget": [100, 2000]}, "above the 1,000 training")])
def test_a_study_refuses_other_teacher_keys_and_budgets_that_do_not_fit(client, ready, grid, fragment):
    response = client.post("/api/studies/", {"dataset": ready.pk, "name": "bad", "base": BASE, "grid": grid},
                           format="json")
    assert response.status_code == 400 and fragment in str(response.json())
    assert not Run.objects.exists()
