"""A teacher's `model` and `adapter` are names of directories under MODEL_ROOT: a server path, `..`,
a name that is not there or a value that is not a string all get the same answer, which tells
nothing about what exists elsewhere on the worker."""

import pytest
from django.conf import settings

from tests.factories import GOOD

pytestmark = pytest.mark.django_db


@pytest.fixture
def models_folder():
    root = settings.MODEL_ROOT
    (root / "tiny-llm").mkdir(parents=True, exist_ok=True)
    (root / "tiny-llm" / "config.json").write_text("{}")
    (root / "adapters" / "ml-lora").mkdir(parents=True, exist_ok=True)
    (root / "adapters" / "ml-lora" / "adapter_config.json").write_text("{}")
    return root


def create(client, dataset, teacher):
    return client.post("/api/runs/", {**GOOD, "dataset": dataset.pk, "teacher": teacher}, format="json")


@pytest.fixture
def no_launch(monkeypatch):
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda *args: None)


@pytest.mark.parametrize("value", ["/etc", "/root", "/nonexistent-dir", "../../etc", "tiny-llm/../../..", "missing",
                                   "/tmp", "a b"])
def test_a_path_outside_the_model_folder_gets_the_one_generic_answer(client, dataset, models_folder, no_launch, value):
    response = create(client, dataset, {"kind": "bigrec", "model": value})
    assert response.status_code == 400
    assert response.json() == create(client, dataset, {"kind": "bigrec", "model": "missing"}).json()


@pytest.mark.parametrize("value", [5, {"a": 1}, ["tiny-llm"], True])
def test_a_model_that_is_not_a_string_is_refused_at_creation(client, dataset, models_folder, no_launch, value):
    response = create(client, dataset, {"kind": "bigrec", "model": value})
    assert response.status_code == 400 and "teacher" in response.json()


def test_a_model_named_under_the_folder_is_accepted_and_stored_by_name(client, dataset, models_folder, no_launch):
    response = create(client, dataset, {"kind": "bigrec", "model": "tiny-llm", "adapter": "adapters/ml-lora"})
    assert response.status_code == 201, response.content
    assert (response.json()["config"]["teacher"]["model"], response.json()["config"]["teacher"]["adapter"]) == (
        "tiny-llm", "adapters/ml-lora")


def test_a_symlink_out_of_the_folder_is_refused(client, dataset, models_folder, no_launch):
    link = models_folder / "escape"
    if not link.exists():
        link.symlink_to("/etc")
    assert create(client, dataset, {"kind": "bigrec", "model": "escape"}).status_code == 400


def test_the_models_endpoint_lists_models_and_adapters_by_name(client, models_folder):
    listed = client.get("/api/models/").json()["models"]
    assert {"name": "tiny-llm", "kind": "model"} in listed and {"name": "adapters/ml-lora", "kind": "adapter"} in listed
    assert not any(entry["name"].startswith("/") for entry in listed)


def test_the_models_endpoint_needs_login(anonymous):
    assert anonymous.get("/api/models/").status_code == 401
