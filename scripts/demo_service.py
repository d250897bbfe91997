"""`make demo`: the service on a bare machine, driven over its own REST API.

Starts the web server and a worker (SQLite and kombu's filesystem broker under demo-out/storage
unless DATABASE_URL / CELERY_BROKER_URL are set), creates a demo user, imports the synthetic
catalogue, launches a run with the offline semantic teacher, waits for it, prints the comparison,
the URL and the credentials, and keeps serving until Ctrl-C (DEMO_EXIT=1: stop when done).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("DEMO_OUT", ROOT / "demo-out"))
PORT = int(os.environ.get("DEMO_PORT", "8000"))
URL = f"http://127.0.0.1:{PORT}"


SEEDS = int(os.environ.get("DEMO_SEEDS", "3"))   # students per role: the verdict's interval over seeds


def main() -> int:
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("STORAGE_ROOT", str(OUT / "storage"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    Path(os.environ["STORAGE_ROOT"]).mkdir(parents=True, exist_ok=True)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "--noinput", "-v", "0"], check=True, cwd=ROOT)

    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token
    password_file = OUT / "demo-password.txt"
    password = password_file.read_text().strip() if password_file.exists() else secrets.token_urlsafe(12)
    password_file.write_text(password + "\n")
    user, _ = get_user_model().objects.get_or_create(username="demo")
    user.set_password(password)
    user.save()
    token = Token.objects.get_or_create(user=user)[0].key

    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children = [
        subprocess.Popen(manage + ["run_worker", "--loglevel", "WARNING"], cwd=ROOT,
                         stdout=open(logs / "worker.log", "ab"), stderr=subprocess.STDOUT),
        subprocess.Popen(manage + ["runserver", f"127.0.0.1:{PORT}", "--noreload"], cwd=ROOT,
                         stdout=open(logs / "web.log", "ab"), stderr=subprocess.STDOUT),
    ]

    def stop(*_args):
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    import atexit
    atexit.register(lambda: [c.kill() for c in children if c.poll() is None])
    try:
        wait_for_server(children)
        api = Api(token)
        dataset = demo_dataset(api)
        run = api.post("/api/runs/", {
            "dataset": dataset["id"], "name": f"demo {time.strftime('%H:%M:%S')}", "student": "sasrec",
            "teacher": {"backend": "semantic"}, "distill": {"lam": "auto"}, "train": {"epochs": 30}, "seeds": SEEDS,
            "tags": ["demo"]})
        print(f"run {run['id']} queued: semantic teacher (all-MiniLM-L6-v2), SASRec baseline and distilled, "
              f"{SEEDS} seeds each", flush=True)
        shown = ("", -1.0)
        while run["status"] in ("queued", "running"):
            time.sleep(2)
            run = api.get(f"/api/runs/{run['id']}/")
            if run["stage_message"] != shown[0] or run["progress"] >= shown[1] + 0.1:
                print(f"  {run['status']:<9} {run['progress'] * 100:5.1f}%  {run['stage_message']}", flush=True)
                shown = (run["stage_message"], run["progress"])
        print(report(run))
        if run["status"] == "succeeded":
            print(take_out(api, run))
        print(f"\ndashboard: {URL}/runs/{run['id']}/ (log in as demo, password {password})\n"
              f"API: {URL}/api/docs/, token {token}\n"
              f"logs: {logs}; Ctrl-C stops the server and the worker", flush=True)
        if os.environ.get("DEMO_EXIT") == "1":
            stop()
        while all(child.poll() is None for child in children):
            time.sleep(1)
        print("a service process stopped; see the logs", file=sys.stderr)
        stop()
    except KeyboardInterrupt:
        stop()
    return 0


def wait_for_server(children, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{URL}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        if any(child.poll() is not None for child in children):
            break
        time.sleep(0.5)
    raise SystemExit(f"the service did not come up on {URL}; see {OUT / 'logs'}")


class Api:
    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Token {token}"}

    def get(self, path: str) -> dict:
        return self._send(urllib.request.Request(URL + path, headers=self.headers))

    def download(self, path: str) -> bytes:
        try:
            with urllib.request.urlopen(urllib.request.Request(URL + path, headers=self.headers), timeout=600) as answer:
                return answer.read()
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"GET {URL + path}: {exc.code} {exc.read().decode()[:500]}")

    def post(self, path: str, body: dict) -> dict:
        return self._send(urllib.request.Request(URL + path, data=json.dumps(body).encode(), method="POST",
                                                 headers={**self.headers, "Content-Type": "application/json"}))

    def upload(self, path: str, fields: dict, files: dict) -> dict:
        boundary = secrets.token_hex(16)
        parts = []
        for name, value in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, paths in files.items():   # a field may repeat: {"files": [path, path]}
            for file in (paths if isinstance(paths, list) else [paths]):
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file.name}"\r\n'
                             f"Content-Type: text/csv\r\n\r\n".encode() + file.read_bytes() + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self._send(urllib.request.Request(URL + path, data=body, method="POST", headers={
            **self.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}))

    @staticmethod
    def _send(request) -> dict:
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{request.get_method()} {request.full_url}: {exc.code} {exc.read().decode()[:500]}")


def demo_dataset(api: Api) -> dict:
    """The synthetic catalogue of `python -m distill demo` (250 users, 1,500 items), uploaded once."""
    existing = [d for d in api.get("/api/datasets/")["results"] if d["name"] == "synthetic demo"]
    if existing:
        return existing[0]
    from distill.data.synth import generate_synthetic
    folder = OUT / "synthetic"
    generate_synthetic(folder, users=250, items=1500, seed=1)
    dataset = api.upload("/api/datasets/", {"name": "synthetic demo"},
                         {"files": [folder / "interactions.csv", folder / "items.csv"]})
    dataset = wait_ready(api, dataset["id"])
    print(f"dataset {dataset['id']}: {dataset['stats']['users']} users, {dataset['stats']['items']} items, "
          f"{dataset['stats']['instances']['train']:,} training instances", flush=True)
    return dataset


def wait_ready(api: Api, dataset_id: int, timeout: float = 600) -> dict:
    """Poll the dataset until a worker has prepared it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        dataset = api.get(f"/api/datasets/{dataset_id}/")
        if dataset["status"] == "ready":
            return dataset
        if dataset["status"] == "failed":
            raise SystemExit(f"dataset {dataset_id} failed to prepare: {dataset['error']}")
        time.sleep(0.5)
    raise SystemExit(f"dataset {dataset_id} was not prepared within {timeout:.0f} s; is the worker running?")


def take_out(api: Api, run: dict) -> str:
    """The distilled student exported as ONNX over the API, unpacked under OUT/export, and its
    serve.py (numpy + onnxruntime only) asked for one test user's recommendations."""
    import io
    import zipfile
    archive = zipfile.ZipFile(io.BytesIO(api.download(f"/api/runs/{run['id']}/export/?format=onnx&k=10")))
    target = OUT / "export"
    archive.extractall(target)
    folder = target / archive.namelist()[0].split("/")[0]
    card = json.loads((folder / "model_card.json").read_text())
    items = json.loads((folder / "items.json").read_text())
    history = items["ids"][:3]
    answer = subprocess.run([sys.executable, "serve.py", "--history", ",".join(history), "--k", "3"], cwd=folder,
                            capture_output=True, text=True)
    if answer.returncode != 0:
        return f"export: serve.py failed: {answer.stderr.strip()}"
    top = json.loads(answer.stdout)
    latency = card["latency"]
    lines = [f"\nexported to {folder} (ONNX opset {card['interface']['opset']}, checked on "
             f"{card['check']['histories']} test histories): p50 onnxruntime "
             f"{latency['onnxruntime']['p50_ms']:.3f} ms vs torch {latency['torch']['p50_ms']:.3f} ms",
             f"python serve.py --history {','.join(history)} --k 3  ->  " +
             "; ".join(f"{i} {t!r}" for i, t in zip(top["items"], top["titles"]))]
    return "\n".join(lines)


def report(run: dict) -> str:
    if run["status"] != "succeeded":
        return f"run {run['id']} {run['status']}: {run['error']}"
    names = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")
    lines = [f"\n{'test split':<14}" + "".join(f"{n:>10}" for n in names)]
    for role in ("most_popular", "teacher", "baseline", "distilled"):
        row = run["metrics"].get(role, {}).get("test", {})
        lines.append(f"{role:<14}" + "".join(f"{row.get(n, float('nan')):>10.4f}" for n in names))
    for role, lat in run["latency"].items():
        lines.append(f"latency {role:<10} p50 {lat['p50_ms']:.2f} ms  p95 {lat['p95_ms']:.2f} ms  "
                     f"{lat['throughput']:.0f} users/s  {lat['device']}")
    for role in ("baseline", "distilled"):
        interval = (run.get("uncertainty") or {}).get(role, {}).get("test", {}).get("ndcg@20")
        if interval and interval["n"] > 1:
            lines.append(f"{role:<10} test NDCG@20 over {interval['n']} seeds: {interval['mean']:.4f} "
                         f"[95% CI {interval['ci95'][0]:.4f}, {interval['ci95'][1]:.4f}]")
    if run.get("comparison"):
        from distill.pipeline import format_verdict
        lam = ((run.get("chosen") or {}).get("distilled") or {}).get("lam")
        lines.append("verdict: " + format_verdict(run["comparison"], run["config"]["student"], lam, run["latency"]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
