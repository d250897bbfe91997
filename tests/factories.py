"""Helpers shared by the service's tests: where things are, the one polling helper, file builders
and factories for users' datasets and runs. Fixtures live in the conftest files; test modules
import helpers from here (`from tests.factories import ...`), never from another test module.

Nothing here imports Django at module level, so tests/distill may import it too.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
ML100K = Path(os.environ.get("ML100K") or ROOT.parent / "shared" / "data" / "ml-100k")
FINISHED = ("succeeded", "failed", "cancelled")


# ----------------------------------------------------------------------------- polling

def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.2,
               message: str | Callable[[], str] = "condition not met", sleep: Callable[[float], object] = time.sleep):
    """Call `predicate` every `interval` seconds until it returns something truthy, and return that.

    After `timeout` seconds raise AssertionError with `message` (a callable is called then, so it
    can describe the state at the deadline). `sleep` lets a caller wait its own way (Playwright's
    page.wait_for_timeout keeps the browser's events flowing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (waited {timeout:g} s)")
        sleep(interval)


def poll_run(client, run_id: int, until=FINISHED, timeout: float = 300) -> dict:
    """GET /api/runs/<id>/ until its status is one of `until`; the last body."""
    last: dict = {}

    def reached():
        last.clear()
        last.update(client.get(f"/api/runs/{run_id}/").json())
        return dict(last) if last["status"] in until else None

    return wait_until(reached, timeout, 0.5,
                      lambda: f"run {run_id} still {last.get('status')} ({last.get('stage_message')})")


def poll_study(client, study_id: int, timeout: float = 900) -> dict:
    """GET /api/studies/<id>/ until it is no longer queued or running; the last body."""
    last: dict = {}

    def finished():
        last.update(client.get(f"/api/studies/{study_id}/").json())
        return dict(last) if last["status"] not in ("queued", "running") else None

    return wait_until(finished, timeout, 1.0, lambda: f"study still {last.get('status')}: {last.get('counts')}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ----------------------------------------------------------------------------- files

def ml100k_files() -> tuple[Path, Path]:
    """MovieLens-100k's u.data and u.item, read in place (ML100K=DIR)."""
    import pytest
    if not (ML100K / "u.data").is_file():
        pytest.fail(f"MovieLens-100k not found at {ML100K}; set ML100K=DIR")
    return ML100K / "u.data", ML100K / "u.item"


# A small CSV dataset (7 users x 6 items) with a title for every item.
CSV_OK = b"user_id,item_id,timestamp\n" + b"".join(
    f"{u},{i},{u * 100 + i}\n".encode() for u in range(1, 8) for i in range(1, 7))
ITEMS_OK = b"item_id,title\n" + b"".join(f"{i},Film number {i}\n".encode() for i in range(1, 7))


def storage_entries() -> list[str]:
    """The dataset folders under STORAGE_ROOT/datasets."""
    from django.conf import settings
    root = settings.STORAGE_ROOT / "datasets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# ----------------------------------------------------------------------------- API requests

def upload(api, name="ml", fmt="movielens", files=None, options=None, **roles):
    """POST /api/datasets/: `files` [(filename, bytes)] in the repeated field `files`, `roles` as
    role=(filename, bytes) in the one-file fields, `options` the prepare options; ML-100k's two
    files when neither is given. fmt=None leaves the format to be recognised."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    if files is None and not roles:
        data, item = ml100k_files()
        roles = {"interactions": (data.name, data.read_bytes()), "items": (item.name, item.read_bytes())}
    payload = {"name": name, **(options or {})}
    if fmt:
        payload["format"] = fmt
    for role, (filename, content) in roles.items():
        payload[role] = SimpleUploadedFile(filename, content)
    if files:
        payload["files"] = [SimpleUploadedFile(filename, content) for filename, content in files]
    return api.post("/api/datasets/", payload, format="multipart")


def folder_files(folder: Path) -> list[tuple[str, bytes]]:
    """Every file of `folder` as (name, bytes), for `upload(files=...)`."""
    return [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()]


def prepared(api, response, timeout: float = 300) -> dict:
    """The dataset of an accepted upload (202) once prepared: ready or failed. The preparation is
    the worker's task body, `services.prepare_stored`: called here, in this process, unless a
    worker already holds it (the unit tier has none), then polled over the API."""
    from webapp.studio.services import prepare_stored
    assert response.status_code == 202, response.content
    dataset_id = response.json()["id"]
    prepare_stored(dataset_id)
    last: dict = {}

    def finished():
        last.clear()
        last.update(api.get(f"/api/datasets/{dataset_id}/").json())
        return dict(last) if last["status"] in ("ready", "failed") else None

    return wait_until(finished, timeout, 0.2, lambda: f"dataset {dataset_id} still {last.get('status')} "
                                                      f"({last.get('message')})")


def token_client(user):
    """An APIClient authenticated with a fresh token of `user`."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=user).key)
    return api


# The run config the REST tests validate (no worker), and the one the worker tests train (2 epochs).
GOOD = {"name": "r", "student": "sasrec", "teacher": {"backend": "semantic", "k": 20},
        "distill": {"lam": "auto"}, "train": {"epochs": 3, "seed": 1}, "tags": ["nightly"]}
RUN = {"name": "semantic sasrec", "student": "sasrec", "teacher": {"backend": "semantic"},
       "distill": {"lam": 0.5}, "train": {"epochs": 2}, "tags": ["ci"]}


# ----------------------------------------------------------------------------- database rows

def finished_run(owner, dataset, name="run", student="sasrec", teacher=0.10, baseline=0.08, distilled=0.12,
                 lam=0.5, tags=("sweep",)):
    """A succeeded run with the rows the worker writes: metrics, curves, latency, artifacts, log."""
    from django.conf import settings

    from webapp.studio.models import Artifact, EpochMetric, Latency, Metric, Run, RunEvent
    from webapp.studio.services import validate_config
    from webapp.studio.stages import STAGE_NAMES
    config = validate_config(student, {"backend": "semantic"}, {"lam": lam}, {"epochs": 3})
    run = Run.objects.create(owner=owner, dataset=dataset, name=name, config=config, tags=list(tags),
                             status=Run.Status.SUCCEEDED, progress=1.0, stage="latency",
                             stage_times={s: {"started": "2026-01-01T00:00:00+00:00",
                                              "finished": "2026-01-01T00:00:02+00:00", "seconds": 2.0}
                                          for s in STAGE_NAMES},
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
    file = Path(settings.STORAGE_ROOT) / "runs" / str(run.pk) / "distilled" / "metrics.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text('{"test": {}}')
    Artifact.objects.create(run=run, kind="distilled", path=str(file), size=12, sha256="ab" * 32)
    RunEvent.objects.create(run=run, stage="baseline", message="baseline: training sasrec")
    return run


_SERVED: dict[str, Path] = {}


def _served_files() -> Path:
    """A prepared synthetic catalogue (data/) and two tiny trained SASRec students (baseline/,
    distilled/), built once per test session and copied into each served run."""
    import tempfile

    if "root" not in _SERVED:
        from distill.data import PrepareOptions, prepare_dataset
        from distill.data.dataset import PreparedDataset
        from distill.data.synth import generate_synthetic
        from distill.recipe import ensure_student, student_config
        root = Path(tempfile.mkdtemp(prefix="served-"))
        generate_synthetic(root / "raw", users=60, items=80, interactions_per_user=(8, 16), seed=3)
        prepare_dataset("csv", str(root / "raw" / "interactions.csv"), root / "data",
                        items=str(root / "raw" / "items.csv"), options=PrepareOptions())
        dataset = PreparedDataset.load(root / "data")
        for seed, role in enumerate(("baseline", "distilled")):
            ensure_student(dataset, student_config("sasrec", {"epochs": 2, "hidden": 16, "seed": seed}, {},
                                                   distilled=False), None, root / role)
        _SERVED["root"] = root
    return _SERVED["root"]


def served_run(owner, name="served"):
    """A succeeded run whose baseline and distilled students are real trained models on a small
    synthetic catalogue (its dataset row points at the prepared files): enough to recommend and
    export without a worker."""
    import shutil

    from django.conf import settings
    from django.utils import timezone

    from distill.data.dataset import PreparedDataset
    from webapp.studio.models import Dataset, Run
    from webapp.studio.services import validate_config
    from webapp.studio.stages import run_dir
    files = _served_files()
    dataset = Dataset.objects.create(owner=owner, name=f"synthetic {name}", format="csv", status=Dataset.Status.READY)
    prepared = Path(settings.STORAGE_ROOT) / "datasets" / f"served-{dataset.pk}" / "prepared"
    shutil.copytree(files / "data", prepared)
    dataset.prepared_dir = str(prepared)
    dataset.content_hash = PreparedDataset.load(prepared).content_hash
    dataset.save()
    config = validate_config("sasrec", {"backend": "titles"}, {"lam": 0.5}, {"epochs": 2, "hidden": 16})
    run = Run.objects.create(owner=owner, dataset=dataset, name=name, config=config, status=Run.Status.SUCCEEDED,
                             progress=1.0, stage="latency", finished_at=timezone.now())
    for role in ("baseline", "distilled"):
        shutil.copytree(files / role, run_dir(run) / role)
    return run


def ready_dataset(owner, name="ready"):
    """A dataset row marked ready, without files: enough for a run to be created on it (not trained)."""
    from webapp.studio.models import Dataset
    return Dataset.objects.create(owner=owner, name=name, format="csv", status=Dataset.Status.READY)


def run_form(user, dataset, **changes) -> dict:
    """The dashboard's new-run form as a browser submits it untouched (every field at its initial
    value), named "from the form", on `dataset`, with `changes`."""
    from django import forms

    from webapp.studio.forms import RunForm
    form = RunForm(user=user)
    data = {"name": "from the form", "dataset": str(dataset.pk)}
    for name, field in form.fields.items():
        value = form.get_initial_for_field(field, name)
        if isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        elif value is not None and name not in data:
            data[name] = str(value)
    return {**data, **changes}


# ----------------------------------------------------------------------------- the shared cache

def unit_tier() -> bool:
    """The unit tier (STUDIO_TEST_DB=sqlite): no Postgres, Redis or worker. (Tests ask this, never
    import tests/webapp/conftest.py: a second import of it would make a second storage folder and
    point the environment of workers started later at it.)"""
    return os.environ.get("STUDIO_TEST_DB", "postgres") == "sqlite"


def clear_cache() -> None:
    """Forget every count (throttles, login failures) and cached page this session made: the
    local-memory cache is cleared, on the shared Redis only this checkout's keys are deleted (never
    FLUSHDB: other sessions and the broker use the same server)."""
    from django.core.cache import cache
    if not os.environ.get("CACHE_URL"):
        cache.clear()
        return
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=os.environ["CACHE_KEY_PREFIX"] + ":*", count=1000))
    if keys:
        client.delete(*keys)
