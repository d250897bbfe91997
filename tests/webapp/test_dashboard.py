"""The dashboard's pages through Django's test client on the real Postgres: every page needs a
login and shows only the user's own objects; the run form is the run config schema and rejects
what the API rejects, next to the field; uploads report the reader's error next to the file;
the detail, list and compare pages show the numbers stored for the runs."""

import re
from pathlib import Path

import pytest
from django.test import Client

from webapp.studio.models import Artifact, Dataset, EpochMetric, Latency, Metric, Run, RunEvent

from conftest import STORAGE, ml100k_files

pytestmark = pytest.mark.django_db

PAGES = ["/", "/runs/", "/runs/new/", "/runs/compare/?ids={run},{run2}", "/runs/{run}/", "/datasets/",
         "/datasets/upload/", "/datasets/{dataset}/", "/accounts/", "/runs/live/?ids={run}", "/runs/{run}/curves/"]


@pytest.fixture
def web(user):
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def web_bob(django_user_model):
    browser = Client()
    browser.force_login(django_user_model.objects.create_user("bob", password="bob-password-123"))
    return browser


def finished_run(owner, dataset, name="run", student="sasrec", teacher=0.10, baseline=0.08, distilled=0.12,
                 lam=0.5, tags=("sweep",)):
    """A succeeded run with the rows the worker writes: metrics, curves, latency, artifacts, log."""
    from webapp.studio.pipeline import validate_config
    config = validate_config(student, {"backend": "semantic"}, {"lam": lam}, {"epochs": 3})
    run = Run.objects.create(owner=owner, dataset=dataset, name=name, config=config, tags=list(tags),
                             status=Run.Status.SUCCEEDED, progress=1.0, stage="latency",
                             stage_times={s: {"started": "2026-01-01T00:00:00+00:00",
                                              "finished": "2026-01-01T00:00:02+00:00", "seconds": 2.0}
                                          for s in Run.STAGES},
                             analysis={"overlap": {"k": 20, "baseline": 0.25, "distilled": 0.625}})
    for role, value in (("teacher", teacher), ("baseline", baseline), ("distilled", distilled)):
        for k in (10, 20):
            Metric.objects.create(run=run, role=role, split="test", metric="ndcg", k=k, value=value * k / 20)
            Metric.objects.create(run=run, role=role, split="test", metric="hr", k=k, value=2 * value * k / 20)
    for role in ("baseline", "distilled"):
        for epoch in (1, 2, 3):
            EpochMetric.objects.create(run=run, role=role, lam=lam if role == "distilled" else None, epoch=epoch,
                                       loss=1.0 / epoch, val={"ndcg@20": 0.01 * epoch})
    Latency.objects.create(run=run, role="teacher", device="cuda", p50_ms=3000.0, p95_ms=3500.0)
    Latency.objects.create(run=run, role="distilled", device="cpu", p50_ms=1.5, p95_ms=2.0)
    file = STORAGE / "runs" / str(run.pk) / "distilled" / "metrics.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text('{"test": {}}')
    Artifact.objects.create(run=run, kind="distilled", path=str(file), size=12, sha256="ab" * 32)
    RunEvent.objects.create(run=run, stage="baseline", message="baseline: training sasrec")
    return run


@pytest.fixture
def dataset(ml_dataset):
    return Dataset.objects.get(pk=ml_dataset["id"])


def fill(pages, **ids):
    return [page.format(**ids) for page in pages]


def test_anonymous_users_are_sent_to_login_from_every_page(anonymous, dataset, user):
    run, run2 = finished_run(user, dataset), finished_run(user, dataset, name="two")
    browser = Client()
    for page in fill(PAGES, run=run.pk, run2=run2.pk, dataset=dataset.pk):
        response = browser.get(page)
        assert response.status_code == 302, page
        assert response["Location"].startswith("/accounts/login/?next="), page
    for action in ("cancel", "retry", "delete"):
        assert browser.post(f"/runs/{run.pk}/{action}/")["Location"].startswith("/accounts/login/")
    assert Run.objects.filter(pk=run.pk).exists()


def test_every_page_renders_for_its_owner_and_another_users_objects_are_404(web, web_bob, dataset, user):
    run, run2 = finished_run(user, dataset), finished_run(user, dataset, name="two")
    for page in fill(PAGES, run=run.pk, run2=run2.pk, dataset=dataset.pk):
        assert web.get(page).status_code == 200, page
    artifact = run.artifacts.get()
    for page in (f"/runs/{run.pk}/", f"/datasets/{dataset.pk}/", f"/runs/compare/?ids={run.pk},{run2.pk}",
                 f"/runs/{run.pk}/artifacts/{artifact.pk}/", f"/runs/new/?from={run.pk}", f"/runs/{run.pk}/curves/"):
        assert web_bob.get(page).status_code == 404, page
    for action in ("cancel", "retry", "delete"):
        assert web_bob.post(f"/runs/{run.pk}/{action}/").status_code == 404
    assert Run.objects.filter(pk=run.pk).exists()
    assert web_bob.get(f"/runs/live/?ids={run.pk}").json() == {"runs": []}
    # Bob's own pages list none of Alice's objects.
    for page in ("/", "/runs/", "/datasets/"):
        body = web_bob.get(page).content.decode()
        assert f"/runs/{run.pk}/" not in body and f"/datasets/{dataset.pk}/" not in body, page


def test_login_page_logs_in_and_logout_needs_a_post(user):
    browser = Client()
    page = browser.get("/accounts/login/?next=/runs/")
    assert page.status_code == 200 and b'name="password"' in page.content
    wrong = browser.post("/accounts/login/", {"username": "alice", "password": "nope", "next": "/runs/"})
    assert b"Wrong username or password" in wrong.content
    right = browser.post("/accounts/login/", {"username": "alice", "password": "alice-password-123", "next": "/runs/"})
    assert right.status_code == 302 and right["Location"] == "/runs/"
    assert browser.get("/runs/").status_code == 200
    assert browser.post("/accounts/logout/").status_code in (200, 302)
    assert browser.get("/runs/").status_code == 302


def test_runs_list_shows_ndcg_and_gain_sorts_and_filters(web, dataset, user):
    low = finished_run(user, dataset, name="low", baseline=0.10, distilled=0.11)
    high = finished_run(user, dataset, name="high", student="gru4rec", baseline=0.10, distilled=0.15, tags=("best",))
    queued = Run.objects.create(owner=user, dataset=dataset, name="waiting", config=low.config)
    body = web.get("/runs/?sort=-ndcg").content.decode()
    assert body.index(">high<") < body.index(">low<") < body.index(">waiting<")  # missing NDCG sorts last
    assert "0.1500" in body and "+50.0%" in body and "+10.0%" in body
    assert f'data-live="{queued.pk}"' in body
    ascending = web.get("/runs/?sort=ndcg").content.decode()
    assert ascending.index(">low<") < ascending.index(">high<")
    by_gain = web.get("/runs/?sort=-gain").content.decode()
    assert by_gain.index(">high<") < by_gain.index(">low<")
    only = web.get("/runs/?student=gru4rec").content.decode()
    assert ">high<" in only and ">low<" not in only
    tagged = web.get("/runs/?tag=best").content.decode()
    assert ">high<" in tagged and ">low<" not in tagged
    assert ">waiting<" in web.get("/runs/?status=queued").content.decode()
    assert ">high<" not in web.get("/runs/?teacher=hf").content.decode()
    assert web.get("/runs/?sort=nonsense").status_code == 200
    live = web.get(f"/runs/live/?ids={queued.pk},{high.pk}").json()["runs"]
    assert {r["id"]: r["status"] for r in live} == {queued.pk: "queued", high.pk: "succeeded"}


def test_run_detail_shows_metrics_gain_latency_overlap_artifacts_and_log(web, dataset, user):
    run = finished_run(user, dataset, teacher=0.10, baseline=0.08, distilled=0.12)
    body = web.get(f"/runs/{run.pk}/").content.decode()
    assert "+50.0%" in body                       # distilled vs plain at every K
    assert "120%" in body                         # distilled / teacher NDCG@20
    assert "2000×" in body                        # 3000 ms / 1.5 ms
    assert "25%" in body and "62%" in body        # top-20 overlap
    assert "baseline: training sasrec" in body
    for stage in Run.STAGES:
        assert f"<strong>{stage}</strong> <span>done</span>" in body
    assert 'id="chart-data"' in body and "chart-4.6.1.umd.min.js" in body
    curves = web.get(f"/runs/{run.pk}/curves/").json()["curves"]
    assert [c["label"] for c in curves] == ["Student, plain", "Student, distilled, λ=0.5"]
    assert curves[1]["epoch"] == [1, 2, 3] and curves[1]["ndcg"] == [0.01, 0.02, 0.03]
    artifact = run.artifacts.get()
    download = web.get(f"/runs/{run.pk}/artifacts/{artifact.pk}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b'{"test": {}}'
    assert "attachment" in download["Content-Disposition"]
    # An artifact row pointing outside the storage root is never served.
    outside = Artifact.objects.create(run=run, kind="x", path="/etc/passwd", size=1, sha256="0" * 64)
    assert web.get(f"/runs/{run.pk}/artifacts/{outside.pk}/").status_code == 404


def test_cancel_retry_and_delete_buttons_follow_the_run_rules(web, dataset, user, monkeypatch):
    from webapp.studio import api
    launched = []
    monkeypatch.setattr(api, "_launch", lambda run, stage=None: launched.append((run.pk, stage)))
    run = finished_run(user, dataset)
    response = web.post(f"/runs/{run.pk}/cancel/", follow=True)
    assert "already succeeded" in response.content.decode()
    run.status, run.stage = Run.Status.FAILED, "distilled"
    run.save()
    web.post(f"/runs/{run.pk}/retry/")
    run.refresh_from_db()
    assert run.status == "queued" and launched == [(run.pk, "distilled")]
    page = web.post(f"/runs/{run.pk}/delete/", follow=True).content.decode()
    assert "cancel it first" in page and Run.objects.filter(pk=run.pk).exists()
    web.post(f"/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert web.post(f"/runs/{run.pk}/delete/").status_code == 302
    assert not Run.objects.filter(pk=run.pk).exists()


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
    from webapp.studio import api
    monkeypatch.setattr(api, "_launch", lambda run, stage=None: None)
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
    from webapp.studio.pipeline import validate_config
    assert run.config == validate_config("sasrec", {"backend": "semantic", "k": 20}, {}, {"epochs": 3, "lr": 0.002})
    assert run.tags == ["a", "b"]
    again = form_defaults(web.get(f"/runs/new/?from={run.pk}").content.decode())
    assert again["train__lr"] == "0.002" and again["dataset"] == str(dataset.pk)


def test_compare_shows_metrics_config_diff_and_chart_data(web, dataset, user):
    a = finished_run(user, dataset, name="lam low", lam=0.1, distilled=0.10)
    b = finished_run(user, dataset, name="lam high", lam=0.9, distilled=0.14)
    page = web.get(f"/runs/compare/?ids={a.pk},{b.pk}")
    body = page.content.decode()
    assert page.status_code == 200
    assert re.search(r'<tr class="differs"><th scope="row">lam</th><td>0.1</td><td>0.9</td>', body)
    assert re.search(r'<tr class="same"><th scope="row">epochs</th>', body)
    assert '<td class="num best">0.1400</td>' in body
    import json
    chart = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', body).group(1))
    assert chart["parallel"]["axes"][0]["name"] == "lam" and chart["parallel"]["axes"][-1]["name"] == "NDCG@20"
    assert chart["parallel"]["axes"][-1]["scaled"] == [0.0, 1.0]
    assert 'class="config-diff only-diff"' in web.get(f"/runs/compare/?ids={a.pk},{b.pk}&diff=1").content.decode()
    one = web.get(f"/runs/compare/?ids={a.pk}")
    assert one.status_code == 400 and "Select 2 to 10 runs" in one.content.decode()
    assert web.get(f"/runs/compare/?ids={a.pk},999999").status_code == 404


def test_dataset_upload_reports_the_readers_error_next_to_the_file_and_accepts_movielens(web, user):
    data_file, item_file = ml100k_files()
    from django.core.files.uploadedfile import SimpleUploadedFile
    bad_rows = b"196\t242\t3\n"  # no timestamp column
    response = web.post("/datasets/upload/", {
        "name": "broken", "format": "movielens", "interactions": SimpleUploadedFile("u.data", bad_rows),
        "items": SimpleUploadedFile("u.item", item_file.read_bytes())}, HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.status_code == 200 and response.json()["ok"] is False
    errors = response.json()["errors"]
    assert any("u.data" in message and "line 1" in message for messages in errors.values() for message in messages)
    assert not Dataset.objects.filter(name="broken").exists()
    wrong = web.post("/datasets/upload/", {"name": "renamed", "format": "movielens",
                                           "interactions": SimpleUploadedFile("ratings.txt", b"1"),
                                           "items": SimpleUploadedFile("u.item", b"1")})
    assert wrong.status_code == 400
    assert re.search(r'id="id_interactions-error">ratings.txt: a MovieLens ratings file is named', wrong.content.decode())
    ok = web.post("/datasets/upload/", {"name": "ml-100k", "format": "movielens",
                                        "interactions": SimpleUploadedFile("u.data", data_file.read_bytes()),
                                        "items": SimpleUploadedFile("u.item", item_file.read_bytes())},
                  HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert ok.status_code == 200, ok.content
    dataset = Dataset.objects.get(name="ml-100k", owner=user)
    assert ok.json()["url"] == f"/datasets/{dataset.pk}/"
    page = web.get(f"/datasets/{dataset.pk}/").content.decode()
    assert ">943<" in page and ">1682<" in page   # users, items of ML-100k
    # sample rows: a history of titles and the next item's title with its id
    assert re.search(r"<td>[^<]*\(\d{4}\)[^<]*<span class=\"muted\">\(\d+\)</span></td>", page)
    assert re.search(r"<strong>\d+</strong><span>test instances</span>", page)
    listing = web.get("/datasets/").content.decode()
    assert "ml-100k" in listing


def test_account_page_shows_the_api_token_and_rotates_it(web, user):
    from rest_framework.authtoken.models import Token
    page = web.get("/accounts/").content.decode()
    token = Token.objects.get(user=user).key
    assert token in page
    web.post("/accounts/", {"action": "rotate-token"})
    assert Token.objects.get(user=user).key != token


def test_static_files_and_chart_library_are_served_by_the_app(web):
    response = web.get("/static/studio/vendor/chart-4.6.1.umd.min.js")
    assert response.status_code == 200
    assert b"Chart" in b"".join(response.streaming_content)[:2000]
    assert web.get("/static/studio/studio.css").status_code == 200
