"""The deployment files against the app they deploy: docker-compose.yml with .env.example, the
k8s/ manifests (base, overlays, secret template) and the Dockerfile.

Every setting the code reads is provided, the GPU worker reserves a GPU and consumes the gpu queue
only, the commands are the app's real entry points (run through the app itself, in a subprocess,
so this session's Django stays as the other tests configure it), and scripts/validate_deploy.sh
(`make validate-deploy`, CI) rejects an invalid file.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
MOUNT = "/var/lib/studio"                       # the studio-data volume: STORAGE_ROOT, DLLM2REC_HOME
SECRETS = ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")
REQUIRED = SECRETS + ("ALLOWED_HOSTS",)         # no default in production (DEBUG=0)
WORKER_QUEUES = {"worker-gpu": "gpu", "worker-cpu": "cpu"}
APP_SERVICES = ("migrate", "web", *WORKER_QUEUES)
# The settings create STATIC_ROOT when they load: not on this machine.
NO_MKDIR = "import pathlib; pathlib.Path.mkdir = lambda self, *args, **kwargs: None\n"


def read_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def variables_the_code_reads() -> set[str]:
    """Names given to webapp/env.py's helpers, os.environ.get, os.getenv or os.environ[...]."""
    helpers = {"env_str", "env_bool", "env_int", "env_list", "env_path", "os.environ.get", "os.getenv"}
    names = set()
    for package in ("webapp", "worker", "distill"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Call) and ast.unparse(node.func) in helpers and node.args
                        and isinstance(node.args[0], ast.Constant)):
                    names.add(node.args[0].value)
                elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
                        and ast.unparse(node.value) == "os.environ" and isinstance(node.slice, ast.Constant)):
                    names.add(node.slice.value)
    return names


ENV_EXAMPLE = read_env_file(ROOT / ".env.example")
SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def compose_env(service: str) -> dict[str, str]:
    """What a service's container gets: .env (here .env.example), then its `environment:`."""
    spec = SERVICES[service]
    assert spec.get("env_file") in (".env", [".env"]), f"{service}: env_file must be .env"
    return {**ENV_EXAMPLE, **{name: str(value) for name, value in spec.get("environment", {}).items()}}


def load_objects(paths) -> dict[tuple[str, str], dict]:
    objects = {}
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                objects[doc["kind"], doc["metadata"]["name"]] = doc
    return objects


BASE_KUSTOMIZATION = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
BASE = load_objects(K8S / "base" / name for name in BASE_KUSTOMIZATION["resources"])
CONFIG = BASE["ConfigMap", "studio-config"]["data"]
SECRET = load_objects([K8S / "secret.example.yaml"])["Secret", "studio-secrets"]["stringData"]
K8S_ENV = {**CONFIG, **SECRET}
WORKLOADS = {name: obj for (kind, name), obj in BASE.items() if kind in ("Deployment", "StatefulSet", "Job")}
APP_WORKLOADS = ("migrate", "web", *WORKER_QUEUES)


def pod(name: str) -> dict:
    return WORKLOADS[name]["spec"]["template"]["spec"]


def main_container(name: str) -> dict:
    (container,) = pod(name)["containers"]
    return container


def all_containers(name: str) -> list[dict]:
    return pod(name).get("initContainers", []) + pod(name)["containers"]


def probe(code: str, env: dict[str, str]) -> str:
    """Run Python code at the repository root with exactly `env` (a container's); its stdout."""
    result = subprocess.run([sys.executable, "-c", NO_MKDIR + code], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def seconds(duration) -> int:
    """A compose duration ('5m', '60s', '1h30m') or a number of seconds."""
    if isinstance(duration, int):
        return duration
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))


def dockerfile_stages() -> dict[str, list[str]]:
    """Each stage's instructions, continuation lines joined."""
    stages, current = {}, None
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    for line in text.splitlines():
        if match := re.match(r"FROM \S+ AS (\S+)", line):
            current = stages.setdefault(match.group(1), [])
        elif current is not None and line.strip() and not line.startswith("#"):
            current.append(line.strip())
    return stages


# ----------------------------------------------------------------------------- settings

def test_env_example_sets_every_variable_the_code_reads():
    missing = variables_the_code_reads() - ENV_EXAMPLE.keys()
    assert not missing, f".env.example does not set {sorted(missing)}"


def test_k8s_configmap_and_secret_set_every_variable_the_code_reads():
    missing = variables_the_code_reads() - K8S_ENV.keys()
    assert not missing, f"k8s/base/configmap.yaml and k8s/secret.example.yaml do not set {sorted(missing)}"
    assert not set(SECRETS) & CONFIG.keys(), "secrets belong in the Secret, not the ConfigMap"
    assert all(CONFIG.get(name) or SECRET.get(name) for name in REQUIRED)


def test_no_real_secret_is_committed_and_env_is_kept_out_of_git_and_images():
    for values in (ENV_EXAMPLE, SECRET):
        assert "change-me" in values["SECRET_KEY"]
        assert values["POSTGRES_PASSWORD"] == "change-me"
        assert urlsplit(values["DATABASE_URL"]).password == values["POSTGRES_PASSWORD"]
    assert subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT).returncode == 0, ".env is not git-ignored"
    assert ".env" in (ROOT / ".dockerignore").read_text().split(), ".env would be copied into the images"


@pytest.mark.parametrize("platform", ["compose", "k8s"])
def test_production_settings_load_from_the_deployed_environment(platform):
    env = compose_env("web") if platform == "compose" else K8S_ENV
    loaded = json.loads(probe(
        "import django, json\n"
        "django.setup()\n"
        "from django.conf import settings as s\n"
        "print(json.dumps({'debug': s.DEBUG, 'db': s.DATABASES['default'], 'broker': s.CELERY_BROKER_URL,\n"
        "    'hosts': s.ALLOWED_HOSTS, 'static': str(s.STATIC_ROOT), 'storage': str(s.STORAGE_ROOT),\n"
        "    'exempt': s.SECURE_REDIRECT_EXEMPT}, default=str))\n",
        {**env, "DJANGO_SETTINGS_MODULE": "webapp.settings"}))
    assert loaded["debug"] is False
    assert loaded["db"]["ENGINE"] == "django.db.backends.postgresql" and loaded["db"]["HOST"] == "postgres"
    assert loaded["db"]["USER"] == "studio" and loaded["db"]["NAME"] == "studio"
    assert loaded["broker"].startswith("redis://redis:6379")
    assert any(re.match(pattern, "healthz") for pattern in loaded["exempt"]), "/healthz would be redirected to https"
    # The healthchecks call 127.0.0.1 (compose) or send Host: localhost (k8s probes).
    assert ("127.0.0.1" if platform == "compose" else "localhost") in loaded["hosts"]
    assert loaded["storage"].startswith(MOUNT + "/")
    # Static files collected into the image must not be hidden by the volume mounted over STORAGE_ROOT.
    assert not loaded["static"].startswith(MOUNT), f"STATIC_ROOT={loaded['static']} is on the volume"


def test_static_files_are_collected_into_the_image_where_the_settings_look():
    cpu = dockerfile_stages()["cpu"]
    env = next(line for line in cpu if line.startswith("ENV "))
    assert f"STATIC_ROOT={ENV_EXAMPLE['STATIC_ROOT']}" in env
    assert any("manage.py collectstatic --noinput" in line for line in cpu)
    assert compose_env("web")["STATIC_ROOT"] == CONFIG["STATIC_ROOT"] == ENV_EXAMPLE["STATIC_ROOT"]


# ----------------------------------------------------------------------------- docker-compose

def test_compose_app_services_get_the_required_settings():
    postgres = SERVICES["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")
    for service in APP_SERVICES:
        env = compose_env(service)
        assert all(env.get(name) for name in REQUIRED), f"{service}: a required setting is empty"
        assert env["DEBUG"] == "0"
        database = urlsplit(env["DATABASE_URL"])
        assert database.scheme == "postgres" and database.hostname == "postgres"
        assert (database.username, database.path) == (postgres["POSTGRES_USER"], "/" + postgres["POSTGRES_DB"])
        assert database.password == ENV_EXAMPLE["POSTGRES_PASSWORD"]
        assert urlsplit(env["CELERY_BROKER_URL"]).hostname == "redis"


def test_compose_services_start_in_order_through_health_conditions():
    assert SERVICES["postgres"]["healthcheck"]["test"] and SERVICES["redis"]["healthcheck"]["test"]
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert SERVICES["migrate"]["restart"] == "no"
    for service in ("web", *WORKER_QUEUES):
        assert SERVICES[service]["depends_on"] == {
            "postgres": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"}}, service
        assert SERVICES[service]["healthcheck"]["test"], f"{service} has no healthcheck"


def test_compose_web_and_workers_share_the_studio_volume_and_read_models_read_only():
    for service in ("web", *WORKER_QUEUES):
        assert f"studio-data:{MOUNT}" in SERVICES[service]["volumes"], service
        env = compose_env(service)
        assert env["STORAGE_ROOT"].startswith(MOUNT + "/") and env["DLLM2REC_HOME"].startswith(MOUNT + "/")
    for service in WORKER_QUEUES:
        assert any(volume.endswith(":/models:ro") for volume in SERVICES[service]["volumes"]), service


def test_compose_ci_overlay_repeats_the_real_commands_and_checks_but_for_the_ports():
    """tests/deploy/compose.ci.yml (`make test-compose`) repeats a few commands and healthchecks to
    put them on the test stack's ports: otherwise they must stay the real ones, and it must leave
    the start-up order, volumes, settings and restart policies alone."""
    overlay = yaml.safe_load((ROOT / "tests" / "deploy" / "compose.ci.yml").read_text())["services"]
    real, ci = SERVICES["web"]["command"], overlay["web"]["command"]
    bind = real.index("--bind") + 1
    assert ci[:bind] + ci[bind + 1:] == real[:bind] + real[bind + 1:]
    assert overlay["web"]["healthcheck"]["test"] == [
        part.replace(":8000/", ":${STACK_WEB_PORT}/") for part in SERVICES["web"]["healthcheck"]["test"]]
    assert overlay["redis"]["command"][:len(SERVICES["redis"]["command"])] == SERVICES["redis"]["command"]
    assert overlay["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "-p", "${STACK_REDIS_PORT}", "ping"]
    worker = SERVICES["worker-cpu"]["command"]
    queues = worker.index("--queues") + 1
    assert overlay["worker-cpu"]["command"] == [*worker[:queues], "gpu,cpu", *worker[queues + 1:]]
    for name, service in overlay.items():
        assert not {"depends_on", "volumes", "env_file", "restart", "deploy"} & service.keys(), name
        assert set(service.get("healthcheck", {})) <= {"test"}, name


def test_compose_gpu_worker_reserves_a_gpu_and_the_cpu_worker_none():
    devices = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert [device["capabilities"] for device in devices] == [["gpu"]]
    # One GPU, chosen by GPU_DEVICE (default the first) rather than all of the machine's.
    assert devices[0]["driver"] == "nvidia" and devices[0]["device_ids"] == ["${GPU_DEVICE:-0}"], devices
    assert "count" not in devices[0], "count and device_ids are exclusive"
    assert "deploy" not in SERVICES["worker-cpu"]
    assert SERVICES["worker-gpu"]["build"]["target"] == "gpu" and SERVICES["worker-cpu"]["build"]["target"] == "cpu"


# ----------------------------------------------------------------------------- entry points

def dockerfile_cmd(stage: str) -> list[str]:
    return json.loads(next(line for line in dockerfile_stages()[stage] if line.startswith("CMD "))[4:])


def worker_commands():
    for service, queue in WORKER_QUEUES.items():
        yield pytest.param(SERVICES[service]["command"], compose_env(service), queue, id=f"compose-{service}")
        yield pytest.param(main_container(service)["command"], K8S_ENV, queue, id=f"k8s-{service}")
    yield pytest.param(dockerfile_cmd("gpu"), K8S_ENV, "gpu", id="Dockerfile-gpu")


@pytest.mark.parametrize("command, env, queue", list(worker_commands()))
def test_worker_commands_start_celery_on_their_queue_only(command, env, queue):
    """The command runs through manage.py run_worker (os.execv caught): the Celery command line it
    would exec is the one the test suite starts, on one queue."""
    assert command[:3] == ["python", "manage.py", "run_worker"], command
    argv = json.loads(probe(
        "import json, os, sys\n"
        "calls = []\n"
        "os.execv = lambda path, argv: calls.append(argv)\n"
        "sys.stdout = open(os.devnull, 'w')\n"
        "from django.core.management import execute_from_command_line\n"
        f"execute_from_command_line({command[1:]!r})\n"
        "sys.__stdout__.write(json.dumps(calls[0]))\n",
        {**env, "DJANGO_SETTINGS_MODULE": "webapp.settings"}))
    assert argv[1:6] == ["-m", "celery", "-A", "worker", "worker"]
    assert argv[argv.index("-Q") + 1].split(",") == [env["QUEUE_PREFIX"] + queue]
    assert argv[argv.index("--pool") + 1] == "solo" and argv[argv.index("--concurrency") + 1] == "1"
    assert argv[argv.index("--hostname") + 1] == f"{queue}@%h"


def test_worker_module_is_a_celery_app_configured_from_the_settings():
    env = compose_env("worker-gpu")
    broker = probe("import celery, worker\n"
                   "assert isinstance(worker.app, celery.Celery)\n"
                   "print(worker.app.conf.broker_url)\n", env).strip()
    assert broker == env["CELERY_BROKER_URL"]


def test_web_command_is_gunicorn_serving_the_wsgi_application():
    command = SERVICES["web"]["command"]
    assert command[:2] == ["gunicorn", "webapp.wsgi:application"]
    assert main_container("web")["command"] == command == dockerfile_cmd("cpu")
    # gunicorn loads the application and checks its options, as the container would.
    probe("import sys\n"
          "from gunicorn.app.wsgiapp import run\n"
          f"sys.argv = ['gunicorn', '--check-config', *{command[1:]!r}]\n"
          "run()\n", compose_env("web"))


def test_migrations_run_once_before_web_and_workers():
    migrate = ["python", "manage.py", "migrate", "--noinput"]
    assert SERVICES["migrate"]["command"] == main_container("migrate")["command"] == migrate
    assert pod("migrate")["restartPolicy"] in ("OnFailure", "Never")
    for name in ("web", *WORKER_QUEUES):
        (wait,) = pod(name)["initContainers"]
        assert "manage.py migrate --check" in " ".join(wait["command"]), name


@pytest.mark.parametrize("service", WORKER_QUEUES)
def test_worker_healthchecks_ping_the_worker_and_wait_longer_than_a_task_may_run(service):
    """A solo-pool worker answers `inspect ping` only between tasks: a check that gives up sooner
    than TASK_TIME_LIMIT (+1 h, the broker's visibility timeout) would restart a busy worker."""
    queue = WORKER_QUEUES[service]
    longest = int(ENV_EXAMPLE["TASK_TIME_LIMIT"]) + 3600
    check = SERVICES[service]["healthcheck"]
    assert f"celery -A worker inspect ping -d {queue}@$$HOSTNAME" in check["test"][1]
    assert seconds(check["interval"]) * check["retries"] >= longest
    liveness = main_container(service)["livenessProbe"]
    assert f"celery -A worker inspect ping -d {queue}@$HOSTNAME" in " ".join(liveness["exec"]["command"])
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= int(CONFIG["TASK_TIME_LIMIT"]) + 3600


# ----------------------------------------------------------------------------- kubernetes

def test_kustomizations_list_existing_files_and_patches_target_base_objects():
    listed = set(BASE_KUSTOMIZATION["resources"])
    on_disk = {path.name for path in (K8S / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, f"listed but missing: {listed - on_disk}; not listed: {on_disk - listed}"
    overlays = sorted(path.parent for path in (K8S / "overlays").glob("*/kustomization.yaml"))
    assert [path.name for path in overlays] == ["cluster", "single-gpu"]
    for overlay in overlays:
        kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        assert kustomization["resources"] == ["../../base"]
        for patch in kustomization.get("patches", []):
            targets = load_objects([overlay / patch["path"]])
            assert targets.keys() <= BASE.keys(), f"{overlay.name}/{patch['path']}: no such base object"


def test_k8s_app_containers_read_the_configmap_and_the_secret():
    for name in APP_WORKLOADS:
        for container in all_containers(name):
            sources = [(kind, ref["name"]) for source in container["envFrom"] for kind, ref in source.items()]
            assert sources == [("configMapRef", "studio-config"), ("secretRef", "studio-secrets")], name
    (password,) = [var for var in main_container("postgres")["env"] if var["name"] == "POSTGRES_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {"name": "studio-secrets", "key": "POSTGRES_PASSWORD"}


def test_k8s_gpu_worker_requests_a_gpu_on_a_gpu_node():
    resources = main_container("worker-gpu")["resources"]
    # One GPU per worker (one solo-pool worker runs one task at a time), requested and limited alike.
    assert int(resources["limits"]["nvidia.com/gpu"]) == int(resources["requests"]["nvidia.com/gpu"]) == 1
    assert pod("worker-gpu")["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod("worker-gpu")["tolerations"]
    for name in WORKLOADS.keys() - {"worker-gpu"}:
        for container in all_containers(name):
            assert "nvidia.com/gpu" not in container["resources"].get("limits", {}), name


def test_k8s_web_and_workers_share_a_read_write_many_volume():
    assert BASE["PersistentVolumeClaim", "studio-data"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert CONFIG["STORAGE_ROOT"].startswith(MOUNT + "/") and CONFIG["DLLM2REC_HOME"].startswith(MOUNT + "/")
    for name in ("web", *WORKER_QUEUES):
        claims = {volume["name"]: volume["persistentVolumeClaim"]["claimName"]
                  for volume in pod(name)["volumes"] if "persistentVolumeClaim" in volume}
        mounts = {mount["mountPath"]: mount for mount in main_container(name)["volumeMounts"]}
        assert claims[mounts[MOUNT]["name"]] == "studio-data", name
        if name in WORKER_QUEUES:
            assert mounts["/models"]["readOnly"] is True and claims[mounts["/models"]["name"]] == "model-store"


def test_k8s_every_container_has_resource_requests_and_limits():
    for name in WORKLOADS:
        for container in all_containers(name):
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= container["resources"][bound].keys(), f"{name}/{container['name']}"


def test_k8s_probes_check_what_the_service_needs():
    for name in ("web", "postgres", "redis"):
        assert {"livenessProbe", "readinessProbe"} <= main_container(name).keys(), name
    hosts = CONFIG["ALLOWED_HOSTS"].split(",")
    for kind in ("livenessProbe", "readinessProbe"):
        check = main_container("web")[kind]["httpGet"]
        assert check["path"] == "/healthz"
        (host,) = [header["value"] for header in check["httpHeaders"] if header["name"] == "Host"]
        assert host in hosts, f"web {kind}: Host {host} is not in ALLOWED_HOSTS, Django would answer 400"
    ingress_hosts = [rule["host"] for rule in BASE["Ingress", "web"]["spec"]["rules"]]
    assert set(ingress_hosts) <= set(hosts)
    assert all(f"https://{host}" in CONFIG["CSRF_TRUSTED_ORIGINS"].split(",") for host in ingress_hosts)


def test_hpa_scales_the_cpu_worker_deployment():
    hpa = BASE["HorizontalPodAutoscaler", "worker-cpu"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker-cpu"}
    assert ("Deployment", "worker-cpu") in BASE
    # At least one worker always consumes the cpu queue, and the autoscaler has room to add more.
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"], hpa


# ----------------------------------------------------------------------------- validation

def deploy_files_copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / ".env.example", tmp_path)
    shutil.copytree(K8S, tmp_path / "k8s")
    return tmp_path


def validate(root: Path) -> subprocess.CompletedProcess:
    validator = Path(sys.executable).parent / "kubernetes-validate"
    for tool, found in (("docker-compose", shutil.which("docker-compose")), ("kubernetes-validate", validator.exists()),
                        ("kubectl", shutil.which("kubectl"))):
        if not found:
            pytest.fail(f"{tool} is not installed: run `make validate-deploy` (it installs docker-compose and "
                        "the dev extra's kubernetes-validate; kubectl renders the kustomize overlays)")
    return subprocess.run(["bash", str(ROOT / "scripts" / "validate_deploy.sh"), str(root)], capture_output=True,
                          text=True, env={**os.environ, "KUBERNETES_VALIDATE": str(validator)}, timeout=300)


def test_validation_accepts_the_deployment_files(tmp_path):
    result = validate(deploy_files_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "docker-compose.yml: valid" in result.stdout
    assert "k8s/overlays/cluster: rendered and valid" in result.stdout


@pytest.mark.parametrize("path, old, new, message", [
    ("docker-compose.yml", "shm_size:", "shm_sise:", "shm_sise"),
    ("docker-compose.yml", "service_completed_successfully", "service_done", "service_done"),
    ("k8s/base/worker-gpu.yaml", "nodeSelector:", "nodeSelecter:", "nodeSelecter"),
    ("k8s/base/worker-cpu.yaml", "kind: HorizontalPodAutoscaler", "kind: HorizontalPodAutoscalr", "HorizontalPodAutoscalr"),
    ("k8s/overlays/cluster/replicas.yaml", "replicas: 2", "replicas: two", "two"),
])
def test_validation_rejects_an_invalid_file(tmp_path, path, old, new, message):
    root = deploy_files_copy(tmp_path)
    text = (root / path).read_text()
    assert old in text
    (root / path).write_text(text.replace(old, new, 1))
    result = validate(root)
    assert result.returncode != 0, result.stdout
    assert message in result.stderr
