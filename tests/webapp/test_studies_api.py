"""Studies (sweeps as one job) over the API, without a worker: what a study creates, what it
refuses, who waits for whom, and how the best point is chosen (on val, never on test)."""

import pytest

from webapp.studio.models import Metric, Run, Study
from tests.factories import ready_dataset

pytestmark = pytest.mark.django_db

BASE = {"student": "sasrec", "teacher": {"kind": "titles"}, "train": {"epochs": 2}}
GRID = {"distill.lam": [0, 0.3, 0.7]}


@pytest.fixture
def sent(monkeypatch):
    """The run ids whose first stage would have been sent to the broker."""
    ids = []
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda run_id, stage: ids.append(run_id))
    return ids


@pytest.fixture
def ready(user):
    return ready_dataset(user)


def create(client, dataset, **changes):
    return client.post("/api/studies/", {"dataset": dataset.pk, "name": "lam sweep", "base": BASE, "grid": GRID,
                                         **changes}, format="json")


def test_a_grid_makes_one_child_run_per_point(client, ready, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = create(client, ready)
    assert response.status_code == 201, response.content
    body = response.json()
    runs = Run.objects.filter(study_id=body["id"]).order_by("study_index")
    assert [r.config["distill"]["lam"] for r in runs] == [0, 0.3, 0.7]
    assert [c["point"] for c in body["children"]] == [{"distill.lam": v} for v in (0, 0.3, 0.7)]
    assert all(r.config["teacher"] == runs[0].config["teacher"] for r in runs)


def test_only_the_first_child_starts_and_the_others_wait_for_its_teacher(client, ready, sent,
                                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = create(client, ready).json()
    first, *rest = Run.objects.filter(study_id=body["id"]).order_by("study_index")
    assert sent == [first.pk]
    assert all(r.waiting_for_id == first.pk and "waiting for the study's teacher" in r.stage_message for r in rest)


def test_the_teacher_stage_ending_starts_the_waiting_children(client, ready, sent, django_capture_on_commit_callbacks):
    from webapp.studio.studies import release_followers
    with django_capture_on_commit_callbacks(execute=True):
        body = create(client, ready).json()
    first = Run.objects.get(study_id=body["id"], study_index=0)
    with django_capture_on_commit_callbacks(execute=True):
        release_followers(first, teacher_ready=True)
    assert sorted(sent) == sorted(Run.objects.filter(study_id=body["id"]).values_list("pk", flat=True))
    assert not Run.objects.filter(study_id=body["id"], waiting_for__isnull=False).exists()


def test_a_teacher_failure_fails_the_waiting_children_with_its_reason(client, ready, sent):
    from webapp.studio.studies import release_followers
    body = create(client, ready).json()
    first = Run.objects.get(study_id=body["id"], study_index=0)
    first.status, first.stage, first.error = Run.Status.FAILED, "teacher", "teacher: the model is missing"
    first.save()
    release_followers(first)
    rest = Run.objects.filter(study_id=body["id"]).exclude(pk=first.pk)
    assert all(r.status == "failed" and "the model is missing" in r.error for r in rest)


def test_cancelling_the_first_child_hands_the_teacher_to_the_next(client, ready, sent,
                                                                  django_capture_on_commit_callbacks):
    body = create(client, ready).json()
    first, second, third = Run.objects.filter(study_id=body["id"]).order_by("study_index")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/api/runs/{first.pk}/cancel/").status_code == 200
    second.refresh_from_db(), third.refresh_from_db()
    assert second.waiting_for_id is None and third.waiting_for_id == second.pk and second.pk in sent


def test_cancelling_a_study_cancels_every_child(client, ready, sent):
    body = create(client, ready).json()
    response = client.post(f"/api/studies/{body['id']}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert set(Run.objects.filter(study_id=body["id"]).values_list("status", flat=True)) == {"cancelled"}


def test_a_random_search_draws_the_points_it_is_asked_for(client, ready, sent):
    response = create(client, ready, grid=None, random={"n": 4, "seed": 3, "space": {
        "distill.lam": {"low": 0, "high": 1}, "student": ["sasrec", "gru4rec"]}})
    assert response.status_code == 201, response.content
    points = response.json()["points"]
    assert len(points) == 4 and all(0 <= p["distill.lam"] < 1 and p["student"] in ("sasrec", "gru4rec")
                                    for p in points)


@pytest.mark.parametrize("changes,field,fragment", [
    ({"grid": {"teacher.k": [10, 20]}}, "grid", "shares one teacher"),
    ({"grid": {"lam": [0, 1]}}, "grid", "distill.<option>"),
    ({"grid": {"distill.lam": [-1, 0.5]}}, "grid", "point 0"),
    ({"grid": {"distill.lam": list(range(65))}}, "grid", "at most 64"),
    ({"grid": {"distill.lam": [0.1]}, "random": {"n": 2, "space": {"distill.lam": [0, 1]}}}, "grid", "either"),
    ({"base": {**BASE, "epochs": 3}}, "base", "unknown key"),
    ({"base": {**BASE, "seeds": 21}}, "base", "seeds"),
])
def test_bad_studies_are_refused_naming_the_field_and_nothing_is_created(client, ready, sent, changes, field,
                                                                         fragment):
    response = create(client, ready, **changes)
    assert response.status_code == 400, response.content
    assert fragment in str(response.json()[field])
    assert not Study.objects.exists() and not Run.objects.exists()


def test_the_best_point_is_the_val_argmax_even_when_test_prefers_another(client, ready, sent):
    body = create(client, ready).json()
    # val prefers point 1, test prefers point 2: the study must choose point 1
    for run, val, test in zip(Run.objects.filter(study_id=body["id"]).order_by("study_index"),
                              (0.10, 0.30, 0.20), (0.10, 0.20, 0.40)):
        run.status = Run.Status.SUCCEEDED
        run.save()
        Metric.objects.create(run=run, role="distilled", split="val", metric="ndcg", k=20, value=val)
        Metric.objects.create(run=run, role="distilled", split="test", metric="ndcg", k=20, value=test)
    best = client.get(f"/api/studies/{body['id']}/").json()["best"]
    assert best["index"] == 1 and best["selected_on"] == "val" and best["test"]["ndcg@20"] == 0.20


def test_another_users_study_is_not_found(client, other_client, ready, sent):
    body = create(client, ready).json()
    assert other_client.get(f"/api/studies/{body['id']}/").status_code == 404
    assert other_client.post(f"/api/studies/{body['id']}/cancel/").status_code == 404


def test_the_study_page_lists_its_points(client, web, ready, sent):
    body = create(client, ready).json()
    page = web.get(f"/studies/{body['id']}/").content.decode()
    assert "distill.lam" in page and page.count('class="point-row"') == 3

