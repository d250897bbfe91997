"""Teacher sections are stored as {"kind": ...}: the old {"backend": ...} spelling is accepted
over the API, and the data migration rewrites stored runs and teacher cache entries."""

import importlib

import pytest

from webapp.studio.models import Run, TeacherCacheEntry

pytestmark = pytest.mark.django_db
migration = importlib.import_module("webapp.studio.migrations.0003_teacher_kind")


@pytest.mark.parametrize("given, stored", [
    ({"backend": "semantic", "k": 20}, {"kind": "semantic", "k": 20}),
    ({"backend": "titles"}, {"kind": "titles"}),
    ({"backend": "vllm", "beams": 2, "shards": 2}, {"kind": "bigrec", "backend": "vllm", "beams": 2, "shards": 2}),
    ({"kind": "bigrec", "k": 10}, {"kind": "bigrec", "backend": "hf", "k": 10}),
    ({}, {"kind": "semantic"}),
])
def test_old_and_new_spellings_are_stored_as_kind(client, ml_dataset, monkeypatch, given, stored):
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda *args: None)
    response = client.post("/api/runs/", {"name": "r", "dataset": ml_dataset["id"], "teacher": given}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["config"]["teacher"] == stored


@pytest.mark.parametrize("teacher, fragment", [
    ({"kind": "gpt"}, "'gpt' is not one of"),
    ({"kind": "semantic", "shards": 2}, "unknown option(s) 'shards'"),
    ({"kind": "bigrec", "backend": "tgi"}, "'tgi' is not one of"),
])
def test_bad_teacher_kinds_and_options_are_400(client, ml_dataset, teacher, fragment):
    response = client.post("/api/runs/", {"name": "r", "dataset": ml_dataset["id"], "teacher": teacher}, format="json")
    assert response.status_code == 400 and fragment in str(response.json()["teacher"]), response.content


def test_the_migration_rewrites_stored_runs_and_cache_entries(user, ml_dataset, settings, tmp_path):
    from django.apps import apps
    settings.STORAGE_ROOT = tmp_path
    old = {"backend": "hf", "k": 5, "shards": 2}
    run = Run.objects.create(owner=user, dataset_id=ml_dataset["id"], name="old",
                             config={"student": "sasrec", "teacher": old, "distill": {}, "train": {}})
    key = migration.key_of("hash", old)
    (tmp_path / "teachers" / key).mkdir(parents=True)
    entry = TeacherCacheEntry.objects.create(key=key, dataset_hash="hash", config=old,
                                             path=str(tmp_path / "teachers" / key))
    migration.forwards(apps, None)
    run.refresh_from_db()
    entry.refresh_from_db()
    new = {"kind": "bigrec", "backend": "hf", "k": 5, "shards": 2}
    assert run.config["teacher"] == new and entry.config == new
    assert entry.key == migration.key_of("hash", new) != key
    assert entry.path == str(tmp_path / "teachers" / entry.key) and (tmp_path / "teachers" / entry.key).is_dir()
    migration.backwards(apps, None)
    run.refresh_from_db()
    assert run.config["teacher"] == old
