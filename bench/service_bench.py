"""`make bench-service`: the service under load, on the local Postgres.

- `POST /api/runs/{id}/recommend/`: p50/p99 under a bounded loopback load (CLIENTS keep-alive
  clients, REQUESTS requests in all) against gunicorn (WORKERS processes), the distilled SASRec
  trained on ML-100k kept loaded in memory;
- `GET /api/runs/` (a page of 50) and `GET /api/runs/{id}/` with 1,000 runs (and their metric and
  latency rows) in the database;
- a batch of 256 histories in one `recommend` request (users/s);
- the first `recommend` after a restart (gunicorn started, /healthz answered, then one request on
  a new connection), with the students of recent runs preloaded (STUDENT_PRELOAD, the default) and
  without (STUDENT_PRELOAD=0), 5 restarts each, alternating.

It uses its own database (`studio_bench`, dropped and created) and a temporary STORAGE_ROOT.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fresh_database  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ML100K = Path(os.environ.get("ML100K", ROOT.parent / "shared" / "data" / "ml-100k"))
DB = os.environ.get("BENCH_DATABASE", "studio_bench")
PORT = int(os.environ.get("BENCH_PORT", "8791"))
CLIENTS, REQUESTS, WORKERS, RUNS, RESTARTS = 8, 4000, 2, 1000, 5


def main() -> int:
    storage = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    fresh_database(DB, storage, THROTTLE_RECOMMEND="1000000/hour")
    import django
    django.setup()
    token, run_id, history, batch_histories = populate(storage)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    body = json.dumps({"history": history, "k": 10})
    server = start_server()
    try:
        single = load("POST", f"/api/runs/{run_id}/recommend/", body, headers, 1, 500)
        recommend = load("POST", f"/api/runs/{run_id}/recommend/", body, headers, CLIENTS, REQUESTS)
        batch = load("POST", f"/api/runs/{run_id}/recommend/", json.dumps({"histories": batch_histories, "k": 10}),
                     headers, 1, 40)
        listing = load("GET", "/api/runs/?limit=50", None, headers, 2, 200)
        detail = load("GET", f"/api/runs/{run_id}/", None, headers, 2, 200)
    finally:
        stop_server(server)
    first = {"preloaded": [], "not preloaded": []}
    for _ in range(RESTARTS):            # alternating, so both see the same machine state
        for label, preload in (("preloaded", "8"), ("not preloaded", "0")):
            server = start_server(STUDENT_PRELOAD=preload)
            try:
                first[label].append(first_call(f"/api/runs/{run_id}/recommend/", body, headers))
            finally:
                stop_server(server)
    batch = {**batch, "users_per_s": batch["rps"] * len(batch_histories)}
    rows = [("POST /api/runs/{id}/recommend/", "1 client", single),
            ("POST /api/runs/{id}/recommend/", f"{CLIENTS} clients", recommend),
            ("POST recommend, 256 histories", "1 client", batch),
            ("GET /api/runs/?limit=50", f"{RUNS:,} runs", listing),
            ("GET /api/runs/{id}/", f"{RUNS:,} runs", detail)]
    print(f"\n{'endpoint':<32} {'load':<12} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}  (gunicorn {WORKERS} workers "
          f"x 4 threads, loopback, {os.cpu_count()} cores)")
    for name, what, r in rows:
        print(f"{name:<32} {what:<12} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['rps']:>8.0f}")
    print(f"batch of 256 histories: {batch['users_per_s']:,.0f} users/s")
    for label, times in first.items():
        print(f"first recommend after a restart, {label}: " + ", ".join(f"{t:.0f} ms" for t in times))
    out = ROOT / "bench-out"
    out.mkdir(exist_ok=True)
    (out / "service.json").write_text(json.dumps({"rows": [{"endpoint": n, "load": w, **r} for n, w, r in rows],
                                                  "first_call_ms": first}, indent=2) + "\n")
    return 0


def start_server(**env: str) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "webapp.wsgi", "-b", f"127.0.0.1:{PORT}",
                               "-w", str(WORKERS), "--threads", "4", "--log-level", "warning"], cwd=ROOT,
                              env={**os.environ, **env})
    wait("/healthz")
    return server


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)


def first_call(path: str, body: str, headers: dict) -> float:
    """Milliseconds of one request on a new connection, made as soon as /healthz answers."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    start = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"POST {path}: HTTP {response.status}")
    return (time.perf_counter() - start) * 1000


def populate(storage: Path):
    """A user, ML-100k, one succeeded run with a trained distilled SASRec, and 999 more runs."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from distill.config import TrainConfig
    from distill.data import PrepareOptions, prepare_dataset
    from distill.rundir import save_run
    from distill.train import train
    from webapp.studio.models import Dataset, Latency, Metric, Run
    user = get_user_model().objects.create_user("bench")
    token = Token.objects.create(user=user).key
    prepared = prepare_dataset("movielens", ML100K, storage / "datasets" / "1" / "prepared", options=PrepareOptions())
    dataset = Dataset.objects.create(owner=user, name="ml-100k", format="movielens", status="ready",
                                     stats=prepared.stats, content_hash=prepared.content_hash,
                                     prepared_dir=str(prepared.path))
    config = {"student": "sasrec", "teacher": {"kind": "semantic"}, "distill": {}, "train": {"epochs": 1}}
    now = timezone.now()      # runs[0] finished last: the one a restarted web process preloads first
    runs = Run.objects.bulk_create([Run(owner=user, dataset=dataset, name=f"run {i}", config=config, tags=["bench"],
                                        status="succeeded", stage="latency", progress=1.0,
                                        finished_at=now - datetime.timedelta(minutes=i)) for i in range(RUNS)])
    metrics, latency = [], []
    for run in runs:
        for role in ("teacher", "baseline", "distilled"):
            for split in ("val", "test"):
                for name in ("hr", "ndcg"):
                    for k in (10, 20):
                        metrics.append(Metric(run=run, role=role, split=split, metric=name, k=k, value=0.1))
        latency += [Latency(run=run, role=role, device="cpu", batch_size=256, p50_ms=0.5, p95_ms=0.7, throughput=5e4)
                    for role in ("baseline", "distilled")]
    Metric.objects.bulk_create(metrics)
    Latency.objects.bulk_create(latency)
    result = train(prepared, TrainConfig(student="sasrec", epochs=1), None)
    save_run(result, prepared, storage / "runs" / str(runs[0].pk) / "distilled")
    histories = [[prepared.item_ids[int(i)] for i in prepared.test.seq[n][:prepared.test.len_seq[n]]]
                 for n in range(256)]
    return token, runs[0].pk, histories[0], histories


def wait(path: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not start")


def load(method: str, path: str, body, headers: dict, clients: int, requests: int) -> dict:
    """`requests` requests from `clients` keep-alive connections; per-request wall times."""
    timings, errors, lock = [], [], threading.Lock()
    per_client = requests // clients

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        mine = []
        for i in range(per_client + 5):
            start = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(response.status)
            if i >= 5:  # warm-up: the first requests load the model into each gunicorn worker
                mine.append(time.perf_counter() - start)
        with lock:
            timings.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{method} {path}: {len(errors)} errors, e.g. HTTP {errors[0]}")
    ms = np.array(timings) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "rps": len(timings) / elapsed, "requests": len(timings), "clients": clients}


if __name__ == "__main__":
    sys.exit(main())
