"""POST /api/runs/: the config is validated and stored; a bad one gets 400 naming the field and
creates nothing; another user's dataset cannot be used."""

import pytest

from webapp.studio.models import Run
from tests.factories import GOOD

pytestmark = pytest.mark.django_db


def test_create_stores_the_validated_config(queued):
    assert queued["status"] == "queued" and queued["config"]["train"] == {"epochs": 3, "seed": 1}
    assert queued["config"]["teacher"] == {"kind": "semantic", "k": 20} and queued["tags"] == ["nightly"]


@pytest.mark.parametrize("change, field, fragment", [
    ({"train": {"epocs": 3}}, "train", "did you mean 'epochs'"),
    ({"train": {"epochs": "many"}}, "train", "epochs"),
    ({"distill": {"lam": "often"}}, "distill", "lam"),
    ({"distill": {"student": "gru4rec"}}, "distill", "top level"),
    ({"teacher": {"backend": "gpt"}}, "teacher", "'gpt' is not one of"),
    ({"teacher": {"backend": "semantic", "beams": 4}}, "teacher", "unknown option(s) 'beams'"),
    ({"teacher": {"backend": "hf", "k": 0}}, "teacher", "k=0 is out of range: 1..1000"),
    ({"teacher": {"kind": "bigrec", "beams": 1000000}}, "teacher", "beams=1000000 is out of range: 1..64"),
    ({"train": {"hidden": 10**7}}, "train", "hidden=10000000 is out of range: 1..1024"),
    ({"train": {"batch_size": 10**6}}, "train", "batch_size=1000000 is out of range"),
    ({"train": {"epochs": 10**6}}, "train", "epochs=1000000 is out of range"),
    ({"distill": {"candidate_k": 50}}, "distill", "candidate_k=50 is more than the teacher's k=20"),
    ({"student": "bert4rec"}, "student", "bert4rec"),
    ({"train": [1, 2]}, "train", "must be a JSON object of option names to values, got list"),
    ({"tags": "nightly"}, "tags", "Expected a list of items"),
    ({"name": ""}, "name", "may not be blank"),
])
def test_bad_run_configs_get_400_naming_the_field(client, ml_dataset, change, field, fragment):
    response = client.post("/api/runs/", {**GOOD, "dataset": ml_dataset["id"], **change}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body and fragment in str(body[field]), body
    assert Run.objects.count() == 0


def test_a_dataset_of_another_user_cannot_be_used(other_client, ml_dataset):
    response = other_client.post("/api/runs/", {**GOOD, "dataset": ml_dataset["id"]}, format="json")
    assert response.status_code == 400 and "no dataset" in str(response.json()["dataset"])
