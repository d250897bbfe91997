"""`docker compose up`, for real (`make test-compose`): the stack of docker-compose.yml, with
tests/deploy/compose.ci.yml on top, from the cpu image built from the repository's Dockerfile,
driven over its REST API as a user would: a user made with `create_api_user` in the web
container, a synthetic catalogue uploaded, a run (titles teacher, SASRec, 2 epochs) trained to
`succeeded` by the worker, then served by web from the volume they share.

scripts/compose_test.sh (`make test-compose`) starts the Docker engine and builds the images
first and sets STUDIO_COMPOSE_TESTS=1, without which tests/conftest.py does not collect this module
(so `make test`, `make test-fast` and any `-m` selection leave it out). Each stack
is a compose project of its own (its own name, folder, ports and volumes), always taken down with
its volumes; its containers' logs are kept under test-artifacts/compose/.
"""

from __future__ import annotations

import csv
import json
import secrets
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml

from tests.factories import ROOT, free_port, poll_run, wait_until

pytestmark = pytest.mark.compose

OVERLAY = ROOT / "tests" / "deploy" / "compose.ci.yml"
IMAGES = ("dllm2rec-studio:cpu", "studio-postgres:ci", "studio-redis:ci")
LOGS = ROOT / "test-artifacts" / "compose"
PORTS = ("STACK_POSTGRES_PORT", "STACK_REDIS_PORT", "STACK_WEB_PORT")
PASSWORD = "alice-password-for-compose"
# The run of the README's example, small: the offline titles teacher, two epochs, one lambda.
RUN = {"name": "compose", "student": "sasrec", "teacher": {"kind": "titles"}, "distill": {"lam": 0.5},
       "train": {"epochs": 2}, "tags": ["ci"]}
TRAINING = ("baseline", "distilled")


def run(command: list[str], timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def env_file(ports: dict[str, int], postgres_password: str, database_password: str) -> str:
    """.env.example, its change-me secrets replaced and its URLs pointed at this stack's ports on
    the loopback; the ports themselves added for compose.ci.yml."""
    settings = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "POSTGRES_PASSWORD": postgres_password,
        "DATABASE_URL": f"postgres://studio:{database_password}@127.0.0.1:{ports['STACK_POSTGRES_PORT']}/studio",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{ports['STACK_REDIS_PORT']}/0",
        "CACHE_URL": f"redis://127.0.0.1:{ports['STACK_REDIS_PORT']}/1",
        # Plain http on the machine itself (README, "Deploy", step 3).
        "SECURE_SSL_REDIRECT": "0",
        # A killed worker's run is taken up again after 15 s of silence instead of 15 minutes.
        "RUN_STALE_SECONDS": "15",
        **ports,
    }
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, equals, _ = line.partition("=")
        if equals and not line.startswith("#") and name in settings:
            line = f"{name}={settings.pop(name)}"
        lines.append(line)
    return "\n".join(lines + [f"{name}={value}" for name, value in settings.items()]) + "\n"


class Stack:
    """One compose project in a folder of its own: .env written from .env.example, and
    docker-compose.yml merged with compose.ci.yml by docker-compose itself."""

    def __init__(self, folder: Path, database_password: str | None = None) -> None:
        missing = [image for image in IMAGES if run(["docker", "image", "inspect", image], check=False).returncode]
        if missing:
            pytest.fail(f"images {missing} not built: run `make test-compose` (it builds them, then runs these tests)")
        self.folder, self.name = folder, f"studio-ci-{secrets.token_hex(4)}"
        ports = {name: free_port() for name in PORTS}
        self.url = f"http://127.0.0.1:{ports['STACK_WEB_PORT']}"
        password = secrets.token_urlsafe(18)
        (folder / ".env").write_text(env_file(ports, password, database_password or password))
        (folder / "models").mkdir()
        merged = run(["docker-compose", "--project-directory", str(folder), "-f", str(ROOT / "docker-compose.yml"),
                      "-f", str(OVERLAY), "config"])
        config = yaml.safe_load(merged.stdout)
        # docker-compose 1.x refuses a published port on the host's network, where it means nothing,
        # and an override file cannot remove a key: web's `ports` go from the merged file.
        del config["services"]["web"]["ports"]
        (folder / "docker-compose.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return run(["docker-compose", "-p", self.name, "-f", str(self.folder / "docker-compose.yml"), *args],
                   timeout=timeout, check=check)

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def state(self, service: str) -> str:
        """A running container's health (healthy, starting, unhealthy; `running` without a
        healthcheck), else its status (exited, restarting, created), or `absent`."""
        container = self.container(service)
        if not container:
            return "absent"
        return run(["docker", "inspect", "-f", "{{if and .State.Running .State.Health}}{{.State.Health.Status}}"
                    "{{else}}{{.State.Status}}{{end}}", container]).stdout.strip()

    def healthcheck_passes(self, service: str) -> bool:
        """The container's own healthcheck command, run in it now: Docker runs the workers' every
        5 minutes only (docker-compose.yml)."""
        container = self.container(service)
        test = json.loads(run(["docker", "inspect", "-f", "{{json .Config.Healthcheck.Test}}", container]).stdout)
        command = ["sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
        return run(["docker", "exec", container, *command], check=False, timeout=120).returncode == 0

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service).stdout

    def up(self) -> None:
        """`up -d`, which returns once postgres and redis are healthy and migrate has exited 0;
        then web healthy by Docker's healthcheck and the worker answering its own."""
        self.compose("up", "-d", "--no-build")
        wait_until(lambda: self.state("web") == "healthy", 240, 2,
                   lambda: f"web is {self.state('web')}:\n{self.logs('web')[-3000:]}")
        wait_until(lambda: self.healthcheck_passes("worker-cpu"), 240, 2,
                   lambda: f"worker-cpu does not answer its healthcheck:\n{self.logs('worker-cpu')[-3000:]}")

    def down(self, volumes: bool = True) -> None:
        """Down, its volumes too unless told to keep them; its containers' logs kept first."""
        LOGS.mkdir(parents=True, exist_ok=True)
        with open(LOGS / f"{self.name}.log", "a") as file:
            file.write(self.compose("logs", "--no-color", "--timestamps", check=False).stdout)
        self.compose("down", *(["-v"] if volumes else []), "--remove-orphans")


class Api(requests.Session):
    """The stack's REST API as a user's script calls it: a token, paths from the site's root (so
    tests.factories.poll_run polls it as it polls the test client)."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__()
        self.url = url
        self.headers["Authorization"] = f"Token {token}"

    def request(self, method, path, *args, **kwargs):
        kwargs.setdefault("timeout", 120)
        return super().request(method, self.url + path, *args, **kwargs)


# ----------------------------------------------------------------------------- a broken .env

def test_a_database_password_postgres_refuses_keeps_web_down_and_the_log_says_why(tmp_path):
    """POSTGRES_PASSWORD and the password in DATABASE_URL differ: migrate, the first to connect,
    fails and says so; web, which starts only after a successful migrate, never runs."""
    stack = Stack(tmp_path, database_password="not-the-postgres-password")
    try:
        answer = stack.compose("up", "-d", "--no-build", check=False)
        assert answer.returncode != 0, answer.stdout + answer.stderr
        assert 'password authentication failed for user "studio"' in stack.logs("migrate")
        assert stack.state("web") == "absent"
    finally:
        stack.down()


# ----------------------------------------------------------------------------- the stack, up once

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("stack"))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def api(stack):
    made = stack.compose("exec", "-T", "web", "python", "manage.py", "create_api_user", "alice", "--password", PASSWORD)
    return Api(stack.url, made.stdout.split()[-1])


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    """The synthetic catalogue of `make demo` (250 users, 1,500 items)."""
    from distill.data.synth import generate_synthetic
    folder = tmp_path_factory.mktemp("catalogue")
    generate_synthetic(folder, users=250, items=1500, seed=1)
    return folder


@pytest.fixture(scope="module")
def dataset(api, catalogue) -> dict:
    files = [("files", (name, (catalogue / name).read_bytes(), "text/csv")) for name in ("interactions.csv", "items.csv")]
    answer = api.post("/api/datasets/", data={"name": "synthetic"}, files=files)
    assert answer.status_code == 202, answer.text

    def prepared():
        body = api.get(f"/api/datasets/{answer.json()['id']}/").json()
        assert body["status"] != "failed", body["error"]
        return body if body["status"] == "ready" else None
    return wait_until(prepared, 300, 0.5, "the worker did not prepare the dataset")


def start_run(api: Api, dataset: dict, name: str) -> int:
    answer = api.post("/api/runs/", json={**RUN, "name": name, "dataset": dataset["id"]})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


@pytest.fixture(scope="module")
def finished(api, dataset) -> dict:
    return poll_run(api, start_run(api, dataset, "compose"), timeout=900)


def recommend(api: Api, run_id: int, history: list[str]) -> list[str]:
    answer = api.post(f"/api/runs/{run_id}/recommend/", json={"history": history, "k": 5})
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


def popular_items(catalogue: Path, count: int = 3) -> list[str]:
    """The catalogue's most interacted-with item ids (kept by any preparation filter)."""
    with open(catalogue / "interactions.csv", newline="") as file:
        return [item for item, _ in Counter(row["item_id"] for row in csv.DictReader(file)).most_common(count)]


def test_healthz_finds_the_database_and_the_broker(stack):
    answer = requests.get(stack.url + "/healthz", timeout=30)
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_the_dashboard_login_page_is_served_with_its_stylesheets(stack):
    """The page and the static files collectstatic put into the image (WhiteNoise serves them)."""
    page = requests.get(stack.url + "/accounts/login/", timeout=30)
    assert page.status_code == 200 and 'name="password"' in page.text
    stylesheets = [link.split('href="', 1)[1].split('"', 1)[0]
                   for link in page.text.split("<link")[1:] if 'rel="stylesheet"' in link]
    assert stylesheets, "the login page links no stylesheet"
    for href in stylesheets:
        assert requests.get(stack.url + href, timeout=30).status_code == 200, href


def test_a_run_trains_to_succeeded_on_the_worker(finished):
    assert (finished["status"], finished["error"]) == ("succeeded", "")


def test_the_run_reports_test_metrics_for_every_role(finished):
    for role in ("most_popular", "teacher", "baseline", "distilled"):
        test = finished["metrics"][role]["test"]
        assert all(0 <= test[name] <= 1 for name in ("hr@10", "ndcg@10", "hr@20", "ndcg@20")), (role, test)
    assert finished["metrics"]["teacher"]["test"]["hr@20"] > 0


def test_web_serves_the_student_the_worker_trained(api, finished, catalogue):
    """Web answers from the student the worker wrote to the volume they share."""
    history = popular_items(catalogue)
    items = recommend(api, finished["id"], history)
    assert len(items) == 5 and not set(items) & set(history)


# ----------------------------------------------------------------------------- faults

def test_a_run_whose_worker_is_killed_is_finished_by_the_restarted_worker(stack, api, dataset):
    worker = stack.container("worker-cpu")
    run_id = start_run(api, dataset, "killed")

    def training():
        body = api.get(f"/api/runs/{run_id}/").json()
        assert body["status"] in ("queued", "running"), body
        return body if body["status"] == "running" and body["stage"] in TRAINING else None
    wait_until(training, 600, 0.2, "the run never started training")
    run(["docker", "kill", worker])
    assert stack.state("worker-cpu") == "exited"
    assert api.get(f"/api/runs/{run_id}/").json()["status"] == "running", "the run finished before the kill"
    stack.compose("start", "worker-cpu")
    body = poll_run(api, run_id, timeout=900)
    assert (body["status"], body["error"]) == ("succeeded", "")


def test_down_and_up_keeps_the_run_and_its_students(stack, api, finished, catalogue):
    history = popular_items(catalogue)
    before = recommend(api, finished["id"], history)
    stack.down(volumes=False)
    stack.up()
    after = api.get(f"/api/runs/{finished['id']}/").json()
    assert (after["status"], after["metrics"]) == ("succeeded", finished["metrics"])
    assert recommend(api, finished["id"], history) == before
