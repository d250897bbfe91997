"""/runs/new/: the form is the run config schema (defaults, help) and rejects what the API rejects,
next to the field; it stores what the API would store."""

import re

import pytest

from webapp.studio.models import Run

pytestmark = pytest.mark.django_db


def form_defaults(body: str) -> dict:
    """The new-run form's fields as a browser would submit them untouched."""
    data = {}
    for name, value in re.findall(r'<input type="(?:text|number)" name="([\w_]+)" value="([^"]*)"', body):
        data[name] = value
    for name in re.findall(r'<input type="checkbox" name="([\w_]+)"[^>]*checked', body):
        data[name] = "on"
    for name, options in re.findall(r'<select name="([\w_]+)"[^>]*>(.*?)</select>', body, flags=re.S):
        selected = re.search(r'<option value="([^"]*)"[^>]*selected', options)
        data[name] = selected.group(1) if selected else re.search(r'<option value="([^"]*)"', options).group(1)
    return data


def test_new_run_form_is_the_config_schema_with_defaults_help_and_field_errors(web, dataset, user, monkeypatch):
    from distill.config import TrainConfig
    from webapp.studio import services
    monkeypatch.setattr(services, "_launch", lambda run, stage=None: None)
    body = web.get("/runs/new/").content.decode()
    defaults = TrainConfig()
    for name in ("epochs", "lr", "lam", "candidate_k", "gamma_position", "ed_weight", "dropout"):
        section = "distill" if name in ("lam", "candidate_k", "gamma_position", "ed_weight") else "train"
        assert f'name="{section}__{name}"' in body, name
    assert 'value="200"' in body and "maximum epochs; early stopping usually ends sooner" in body
    assert "weight of the projected teacher embedding" in body
    data = form_defaults(body)
    assert data["train__epochs"] == str(defaults.epochs) and data["distill__lam"] == defaults.lam
    data.update({"name": "from the form", "dataset": str(dataset.pk), "tags": "a, b", "train__epochs": "3",
                 "train__lr": "-1"})
    bad = web.post("/runs/new/", data)
    assert bad.status_code == 400
    page = bad.content.decode()
    error = re.search(r'id="id_train__lr-error">([^<]+)<', page)
    assert error and "must be &gt; 0" in error.group(1)
    assert not Run.objects.filter(name="from the form").exists()
    titles = web.post("/runs/new/", {**data, "train__lr": "0.001", "teacher_backend": "titles",
                                     "teacher_model": "/models/x"}).content.decode()
    assert re.search(r'id="id_teacher_model-error">the titles teacher takes no model option', titles)
    json_error = web.post("/runs/new/", {**data, "train__lr": "0.001", "teacher_extra": "{beams: 4"}).content.decode()
    assert 'id="id_teacher_extra-error">not valid JSON' in json_error
    ok = web.post("/runs/new/", {**data, "train__lr": "0.002"})
    assert ok.status_code == 302
    run = Run.objects.get(name="from the form")
    assert ok["Location"] == f"/runs/{run.pk}/"
    # Only what differs from the defaults is stored, and it is what the API would have stored.
    from webapp.studio.services import validate_config
    assert run.config == validate_config("sasrec", {"backend": "semantic", "k": 20}, {}, {"epochs": 3, "lr": 0.002})
    assert run.tags == ["a", "b"]
    again = form_defaults(web.get(f"/runs/new/?from={run.pk}").content.decode())
    assert again["train__lr"] == "0.002" and again["dataset"] == str(dataset.pk)


def test_the_teacher_budget_field_stores_a_count_or_a_fraction_and_names_a_bad_one(web, user, monkeypatch):
    from tests.factories import ready_dataset, run_form
    from webapp.studio import services
    monkeypatch.setattr(services, "_launch", lambda run, stage=None: None)
    dataset = ready_dataset(user)
    bad = web.post("/runs/new/", run_form(user, dataset, teacher_budget="ten percent")).content.decode()
    assert re.search(r'id="id_teacher_budget-error">[^<]*give a count of training instances', bad)
    assert web.post("/runs/new/", run_form(user, dataset, teacher_budget="0.1")).status_code == 302
    run = Run.objects.get(name="from the form")
    assert run.config["teacher"]["budget"] == 0.1
    again = web.get(f"/runs/new/?from={run.pk}").content.decode()
    assert 'name="teacher_budget" value="0.1"' in again
