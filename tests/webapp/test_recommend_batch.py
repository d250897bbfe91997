"""POST /api/runs/<id>/recommend/ answers several histories at once, from either student, with the
same answers as one at a time; bad histories are a 400 naming them, an unfinished run a 409."""

import numpy as np
import pytest
import torch

from tests.factories import served_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(user):
    return served_run(user)


@pytest.fixture
def student(run):
    from distill.inference import TrainedStudent
    from webapp.studio.stages import student_dir
    return TrainedStudent.load(student_dir(run, "distilled"))


def post(client, run, body):
    return client.post(f"/api/runs/{run.pk}/recommend/", body, format="json")


def test_a_batch_answers_each_history_as_a_request_of_its_own(client, run, student):
    histories = [student.item_ids[3:6], student.item_ids[10:11], student.item_ids[20:28]]
    batch = post(client, run, {"histories": histories, "k": 7})
    assert batch.status_code == 200, batch.content
    singles = [post(client, run, {"history": h, "k": 7}).json()["items"] for h in histories]
    results = batch.json()["results"]
    assert [[i["id"] for i in r["items"]] for r in results] == [[i["id"] for i in s] for s in singles]
    for result, single in zip(results, singles):
        np.testing.assert_allclose([i["score"] for i in result["items"]], [i["score"] for i in single], atol=1e-5)


def test_answers_carry_titles_and_never_the_history(client, run, student):
    history = student.item_ids[:5]
    items = post(client, run, {"histories": [history], "k": 10}).json()["results"][0]["items"]
    assert len(items) == 10 and not {i["id"] for i in items} & set(history)
    assert all(i["title"] == student.titles[student.index[i["id"]]] for i in items)


def test_a_history_longer_than_the_window_is_cut_from_the_left(client, run, student):
    history = (student.item_ids * 2)[:3 * student.max_len]
    items = post(client, run, {"histories": [history], "k": 5}).json()["results"][0]["items"]
    window = [student.index[i] for i in history[-student.max_len:]]
    with torch.no_grad():
        scores = student.model(torch.tensor([window]), torch.tensor([len(window)]))[0]
    np.testing.assert_allclose([i["score"] for i in items], scores[[student.index[i["id"]] for i in items]].numpy(),
                               atol=1e-5)


def test_role_baseline_answers_from_the_plain_student(client, run, student):
    history = student.item_ids[5:9]
    distilled = post(client, run, {"history": history, "k": 10}).json()["items"]
    baseline = post(client, run, {"history": history, "k": 10, "role": "baseline"}).json()["items"]
    assert [i["score"] for i in baseline] != [i["score"] for i in distilled]


def test_unknown_ids_are_a_400_naming_them_and_their_history(client, run, student):
    response = post(client, run, {"histories": [student.item_ids[:2], ["no-such", student.item_ids[0], "zilch"]]})
    assert response.status_code == 400
    message = response.json()["histories"][0]
    assert "history 1" in message and "'no-such', 'zilch'" in message


@pytest.mark.parametrize("body,field,fragment", [
    ({"histories": []}, "histories", "non-empty list"),
    ({"histories": [["1"], []]}, "histories[1]", "non-empty list"),
    ({"histories": [["1"]] * 1001}, "histories", "at most 1,000 histories"),
    ({"histories": [["1"]], "history": ["1"]}, "detail", "either history"),
    ({"histories": [["1"]], "k": 0}, "k", "1..1000"),
    ({"history": ["1"], "role": "teacher"}, "role", "distilled, baseline"),
])
def test_a_malformed_batch_is_a_400_naming_the_field(client, run, body, field, fragment):
    response = post(client, run, body)
    assert response.status_code == 400
    assert fragment in str(response.json()[field])


def test_a_run_that_has_not_succeeded_is_a_409_with_its_status(client, run, student):
    from webapp.studio.models import Run
    Run.objects.filter(pk=run.pk).update(status=Run.Status.CANCELLED)
    response = post(client, run, {"histories": [student.item_ids[:2]]})
    assert response.status_code == 409
    assert response.json()["status"] == "cancelled" and "cancelled" in response.json()["detail"]


def test_recommending_does_not_spend_the_budget_for_runs(client, run, student, monkeypatch):
    from webapp.studio.throttles import UploadThrottle
    monkeypatch.setattr(UploadThrottle, "THROTTLE_RATES", {"runs": "2/hour", "recommend": "1000/hour"})
    codes = [post(client, run, {"history": student.item_ids[:2]}).status_code for _ in range(4)]
    assert codes == [200] * 4


def test_another_users_run_is_a_404(other_client, run, student):
    assert post(other_client, run, {"histories": [student.item_ids[:2]]}).status_code == 404
