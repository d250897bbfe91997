"""The service's tests, in two tiers chosen by STUDIO_TEST_DB.

- Default (`make test`): the real Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379); the tests
  marked `integration` get a real Celery worker process started by the session (not eager mode).
  Each checkout gets its own database name, Redis database and queue names, so two test sessions
  on one machine (a developer's and CI's) do not take each other's tasks.
- STUDIO_TEST_DB=sqlite (`make test-fast`, the unit tier): a SQLite file in a temporary folder,
  Celery's in-process `memory://` broker and the local-memory cache; no server is contacted and no
  worker starts (runs a test creates stay queued). The `integration` tests cannot run there.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.factories import ROOT, clear_cache, prepared, token_client, upload, wait_until

UNIT = os.environ.get("STUDIO_TEST_DB", "postgres") == "sqlite"
_tag = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
STORAGE = Path(tempfile.mkdtemp(prefix="studio-test-"))
ENV = {
    "DJANGO_SETTINGS_MODULE": "webapp.settings",
    "SECRET_KEY": "test-secret-key-" + "x" * 40,
    "DEBUG": "0",
    "SECURE_SSL_REDIRECT": "0",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/studio_{_tag}",
    "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{int(_tag, 16) % 14 + 1}",
    # The shared cache (throttles, login lockouts) on the machine's Redis, under this checkout's
    # own key prefix: the fixture below deletes only those keys.
    "CACHE_URL": f"redis://127.0.0.1:6379/{int(_tag, 16) % 14 + 1}",
    "CACHE_KEY_PREFIX": f"test-{_tag}",
    "QUEUE_PREFIX": f"test-{_tag}-",
    "STORAGE_ROOT": str(STORAGE),
    "MODEL_ROOT": str(STORAGE / "models"),
    "RUN_STALE_SECONDS": "6",
    "RUN_MAX_ATTEMPTS": "2",
    "THROTTLE_UPLOADS": "1000/hour",
    "THROTTLE_RUNS": "1000/hour",
    "UPLOAD_MAX_MB": "5",
    # No students loaded behind the tests' backs (web processes they start would otherwise query the
    # test database from a thread); the preload's own tests turn it on.
    "STUDENT_PRELOAD": "0",
}
if UNIT:  # no server: the local-memory cache (and login lockouts counted in the database)
    ENV.update({"DATABASE_URL": f"sqlite:///{STORAGE}/db.sqlite3", "CELERY_BROKER_URL": "memory://", "CACHE_URL": ""})
for key, value in ENV.items():
    os.environ[key] = value

import django  # noqa: E402

django.setup()


def pytest_collection_modifyitems(items):
    """A test that uses the worker is an integration test, one that drives Chromium a browser test,
    whether or not its module says so (the markers select the tiers)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if {"worker", "own_broker"} & set(names) and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        if "browser_page" in names and not item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.browser)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(STORAGE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_storage_on_sqlite():
    """SQLite hands out again the ids a rolled-back test used (Postgres' sequences never do): on the
    unit tier every test starts with no dataset or run folders and an empty cache, so an earlier
    test's `datasets/1` or cached profile is not taken for this test's."""
    yield
    clear_cache()
    if UNIT:
        for child in STORAGE.iterdir():
            if child.is_dir() and child.name not in ("static", "broker"):
                shutil.rmtree(child, ignore_errors=True)


# ----------------------------------------------------------------------------- users and clients

@pytest.fixture
def fast_passwords(settings):
    """A cheap password hash, for tests that create many users or check many passwords (request it
    before the users: `pytest.mark.usefixtures("fast_passwords")`)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-123")


@pytest.fixture
def client(user):
    return token_client(user)


@pytest.fixture
def other_client(bob):
    return token_client(bob)


@pytest.fixture
def anonymous():
    from rest_framework.test import APIClient
    return APIClient()


@pytest.fixture
def web(user):
    """The dashboard, logged in as alice."""
    from django.test import Client
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def web_bob(bob):
    from django.test import Client
    browser = Client()
    browser.force_login(bob)
    return browser


# ----------------------------------------------------------------------------- datasets and runs

@pytest.fixture
def ml_dataset(client):
    """ML-100k uploaded over the API and prepared (ready)."""
    dataset = prepared(client, upload(client))
    assert dataset["status"] == "ready", dataset["error"]
    return dataset


@pytest.fixture
def dataset(ml_dataset):
    from webapp.studio.models import Dataset
    return Dataset.objects.get(pk=ml_dataset["id"])


@pytest.fixture
def queued(client, ml_dataset, monkeypatch):
    """A run created over the API, its stage message not sent (no worker in these tests)."""
    from tests.factories import GOOD
    monkeypatch.setattr("webapp.studio.tasks.enqueue_stage", lambda *args: None)
    response = client.post("/api/runs/", {**GOOD, "dataset": ml_dataset["id"]}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# ----------------------------------------------------------------------------- the worker

class Worker:
    """A real `celery worker` process on the session's queues and test database."""

    def __init__(self, db_name: str, broker_url: str | None = None, log: Path | None = None) -> None:
        self.env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}"}
        if broker_url:
            self.env["CELERY_BROKER_URL"] = broker_url
        self.process = None
        self.log = log or STORAGE / "worker.log"

    def start(self) -> None:
        queues = ",".join(ENV["QUEUE_PREFIX"] + q for q in ("gpu", "cpu"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", "solo", "-Q", queues,
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.ready() or self.process.poll() is not None, 60, 0.2,
                   lambda: "the celery worker did not start:\n" + self.log.read_text(errors="replace")[-3000:])
        if not self.ready():
            raise RuntimeError("the celery worker did not start:\n" + self.log.read_text(errors="replace")[-3000:])

    def ready(self) -> bool:
        return "ready." in self.log.read_text(errors="replace")

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


def drop_session_queues(url: str) -> None:
    """Delete this session's queues (QUEUE_PREFIX...) and their bindings on the broker at `url`;
    nothing else in that Redis is touched."""
    import redis
    broker = redis.Redis.from_url(url)
    for pattern in (ENV["QUEUE_PREFIX"] + "*", "_kombu.binding." + ENV["QUEUE_PREFIX"] + "*"):
        keys = list(broker.scan_iter(match=pattern))
        if keys:
            broker.delete(*keys)


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker):
    if UNIT:
        pytest.fail("this test needs Postgres, Redis and a real worker (marker `integration`): "
                    "run it without STUDIO_TEST_DB=sqlite")
    from django.db import connection
    drop_session_queues(ENV["CELERY_BROKER_URL"])
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
    process = Worker(name)
    process.start()
    yield process
    process.stop()
    drop_session_queues(ENV["CELERY_BROKER_URL"])


class RedisServer:
    """A `redis-server` of this test alone, on a free port, without persistence."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log, self.process = port, log, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        import redis
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis(host="127.0.0.1", port=self.port)

        def answers():
            try:
                return client.ping()
            except redis.exceptions.ConnectionError:
                assert self.process.poll() is None, self.log.read_text(errors="replace")[-2000:]
                return False
        wait_until(answers, 10, 0.1, f"redis-server on port {self.port} does not answer")

    def stop(self) -> None:
        """Stop at once: every message it held is gone (no persistence)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def redis_server(tmp_path):
    import shutil as _shutil
    if not _shutil.which("redis-server"):
        pytest.fail("redis-server is not installed")
    from tests.factories import free_port
    server = RedisServer(free_port(), tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


def _use_broker(app, url: str) -> None:
    """Point the in-process Celery app (which sends the runs' messages) at `url`. kombu keeps its
    connection and producer pools in global groups keyed by connection: reset them all, or the
    next message to the old URL would find its pool closed (and wait for the recovery loop)."""
    from kombu import pools
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url


@pytest.fixture
def own_broker(worker, redis_server, django_db_blocker):
    """This test's own Redis (`redis_server`) as the broker, with its own worker on it. The session
    worker is stopped meanwhile (its recovery loop would otherwise take this test's runs) and
    started again afterwards; the machine's shared Redis is never stopped or flushed."""
    from celery import current_app
    from django.db import connection
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
    app = current_app._get_current_object()
    shared_url = app.conf.broker_url
    worker.stop()
    own = Worker(name, broker_url=redis_server.url, log=STORAGE / "worker-own-broker.log")
    _use_broker(app, redis_server.url)
    try:
        own.start()
        yield own
    finally:
        own.stop()
        _use_broker(app, shared_url)
        worker.start()
