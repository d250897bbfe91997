"""The service's tests run against the real Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379),
with a real Celery worker process started by the session (not eager mode).

Each checkout gets its own database name, Redis database and queue names, so two test sessions
on one machine (a developer's and CI's) do not take each other's tasks.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_tag = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
STORAGE = Path(tempfile.mkdtemp(prefix="studio-test-"))
ENV = {
    "DJANGO_SETTINGS_MODULE": "webapp.settings",
    "SECRET_KEY": "test-secret-key-" + "x" * 40,
    "DEBUG": "0",
    "SECURE_SSL_REDIRECT": "0",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/studio_{_tag}",
    "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{int(_tag, 16) % 14 + 1}",
    "QUEUE_PREFIX": f"test-{_tag}-",
    "STORAGE_ROOT": str(STORAGE),
    "RUN_STALE_SECONDS": "6",
    "RUN_MAX_ATTEMPTS": "2",
    "THROTTLE_UPLOADS": "1000/hour",
    "THROTTLE_RUNS": "1000/hour",
    "UPLOAD_MAX_MB": "5",
}
for key, value in ENV.items():
    os.environ[key] = value

import django  # noqa: E402

django.setup()

ML100K = Path(os.environ.get("ML100K", ROOT.parent / "shared" / "data" / "ml-100k"))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(STORAGE, ignore_errors=True)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-123")


@pytest.fixture
def client(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=user).key)
    return api


@pytest.fixture
def other_client(django_user_model):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient
    bob = django_user_model.objects.create_user("bob", password="bob-password-123")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=bob).key)
    return api


@pytest.fixture
def anonymous():
    from rest_framework.test import APIClient
    return APIClient()


def ml100k_files():
    if not (ML100K / "u.data").is_file():
        pytest.fail(f"MovieLens-100k not found at {ML100K}; set ML100K=DIR")
    return ML100K / "u.data", ML100K / "u.item"


def upload(api, name="ml", fmt="movielens", **files):
    """POST /api/datasets/ with files given as role=(filename, bytes)."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    if not files:
        data, item = ml100k_files()
        files = {"interactions": (data.name, data.read_bytes()), "items": (item.name, item.read_bytes())}
    payload = {"name": name, "format": fmt}
    for role, (filename, content) in files.items():
        payload[role] = SimpleUploadedFile(filename, content)
    return api.post("/api/datasets/", payload, format="multipart")


@pytest.fixture
def ml_dataset(client):
    response = upload(client)
    assert response.status_code == 201, response.content
    return response.json()


class Worker:
    """A real `celery worker` process on the session's queues and test database."""

    def __init__(self, db_name: str) -> None:
        self.env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}"}
        self.process = None
        self.log = STORAGE / "worker.log"

    def start(self) -> None:
        queues = ",".join(ENV["QUEUE_PREFIX"] + q for q in ("gpu", "cpu"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", "solo", "-Q", queues,
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if "ready." in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError("the celery worker did not start:\n" + self.log.read_text(errors="replace")[-3000:])

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker):
    from django.db import connection
    import redis
    broker = redis.Redis.from_url(ENV["CELERY_BROKER_URL"])
    broker.flushdb()
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
    process = Worker(name)
    process.start()
    yield process
    process.stop()
    broker.flushdb()
