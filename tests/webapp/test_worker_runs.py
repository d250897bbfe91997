"""Runs end to end with a real Celery worker on Redis and Postgres: upload ML-100k over the API,
launch a run, poll it to `succeeded`; resume after SIGKILL; cancel within an epoch."""

import time

import pytest

from webapp.studio.models import EpochMetric, Latency, Metric, Run

from conftest import upload

pytestmark = pytest.mark.django_db(transaction=True)
RUN = {"name": "semantic sasrec", "student": "sasrec", "teacher": {"backend": "semantic"},
       "distill": {"lam": 0.5}, "train": {"epochs": 2}, "tags": ["ci"]}


def poll(client, run_id, until=("succeeded", "failed", "cancelled"), timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = client.get(f"/api/runs/{run_id}/").json()
        if body["status"] in until:
            return body
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} still {body['status']} ({body['stage_message']}) after {timeout} s")


def test_a_run_goes_from_upload_to_metrics_and_recommendations(worker, client, ml_dataset):
    response = client.post("/api/runs/", {**RUN, "dataset": ml_dataset["id"]}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"
    body = poll(client, response.json()["id"])
    assert body["status"] == "succeeded", body["error"]
    for role in ("teacher", "baseline", "distilled"):
        assert 0 <= body["metrics"][role]["test"]["ndcg@20"] <= 1
        assert body["metrics"][role]["val"]["hr@20"] >= body["metrics"][role]["val"]["hr@10"]
    assert body["latency"]["distilled"]["p50_ms"] > 0 and body["latency"]["baseline"]["device"].startswith("cpu")
    run = Run.objects.get(pk=body["id"])
    assert Metric.objects.filter(run=run, role="teacher", split="test", metric="ndcg", k=20).exists()
    assert Latency.objects.filter(run=run).count() == 2
    assert EpochMetric.objects.filter(run=run, role="baseline").count() == 2
    curves = client.get(f"/api/runs/{run.pk}/curves/").json()["curves"]
    assert {c["role"] for c in curves} == {"baseline", "distilled"}
    # What the dashboard shows: stage timings, the teacher/student top-20 overlap, the log.
    assert set(run.stage_times) == set(Run.STAGES) and all(t["seconds"] > 0 for t in run.stage_times.values())
    overlap = run.analysis["overlap"]
    assert overlap["k"] == 20 and 0 <= overlap["baseline"] <= 1 and 0 <= overlap["distilled"] <= 1
    log = [e.message for e in run.events.all()]
    assert log[0] == "teacher: started (attempt 1)" and log[-1] == "run succeeded"

    recommended = client.post(f"/api/runs/{run.pk}/recommend/", {"history": ["50", "172", "181"], "k": 5},
                              format="json")
    assert recommended.status_code == 200, recommended.content
    items = recommended.json()["items"]
    assert len(items) == 5 and not {"50", "172", "181"} & set(items)
    bad = client.post(f"/api/runs/{run.pk}/recommend/", {"history": ["no-such-item"]}, format="json")
    assert bad.status_code == 400 and "no-such-item" in bad.json()["detail"]

    # The same teacher on the same data is computed once.
    again = client.post("/api/runs/", {**RUN, "name": "again", "dataset": ml_dataset["id"]}, format="json").json()
    done = poll(client, again["id"])
    assert done["status"] == "succeeded"
    assert done["metrics"]["teacher"] == body["metrics"]["teacher"]


def test_a_killed_worker_is_replaced_and_the_run_finishes_without_redoing_stages(worker, client, ml_dataset):
    run_id = client.post("/api/runs/", {**RUN, "name": "killed", "train": {"epochs": 6},
                                        "dataset": ml_dataset["id"]}, format="json").json()["id"]
    deadline = time.time() + 240
    while Run.objects.get(pk=run_id).stage != "baseline" or not EpochMetric.objects.filter(run_id=run_id).exists():
        assert time.time() < deadline, Run.objects.get(pk=run_id).stage_message
        time.sleep(0.2)
    worker.kill()  # SIGKILL mid-training of the baseline
    teacher_rows = Metric.objects.filter(run_id=run_id, role="teacher").count()
    worker.start()
    body = poll(client, run_id)
    assert body["status"] == "succeeded", body["error"]
    assert Metric.objects.filter(run_id=run_id, role="teacher").count() == teacher_rows
    log = worker.log.read_text()
    assert f"run {run_id}: no heartbeat" in log  # recovered from the database, not from the broker
    assert "teacher: semantic on train/val/test" not in body["stage_message"]


def test_cancel_stops_a_running_run_within_an_epoch(worker, client, ml_dataset):
    run_id = client.post("/api/runs/", {**RUN, "name": "cancelled", "train": {"epochs": 50},
                                        "dataset": ml_dataset["id"]}, format="json").json()["id"]
    deadline = time.time() + 240
    while not EpochMetric.objects.filter(run_id=run_id, role="baseline").exists():
        assert time.time() < deadline
        time.sleep(0.2)
    epochs_before = EpochMetric.objects.filter(run_id=run_id).count()
    assert client.post(f"/api/runs/{run_id}/cancel/").status_code == 200
    body = poll(client, run_id, timeout=60)
    assert body["status"] == "cancelled" and "cancelled during baseline" in body["error"]
    assert EpochMetric.objects.filter(run_id=run_id).count() <= epochs_before + 1
    retried = client.post(f"/api/runs/{run_id}/retry/").json()
    assert retried["status"] == "queued"
    client.post(f"/api/runs/{run_id}/cancel/")
    assert poll(client, run_id, timeout=120)["status"] == "cancelled"


def test_restarting_redis_mid_run_loses_no_run(worker, client, ml_dataset):
    """Redis runs without persistence here: a restart drops every queued message. The second
    run's message is lost while the first run trains; the database still says it is queued, and
    the worker's recovery loop sends it again."""
    import subprocess

    import redis
    first = client.post("/api/runs/", {**RUN, "name": "first", "train": {"epochs": 4},
                                       "dataset": ml_dataset["id"]}, format="json").json()["id"]
    second = client.post("/api/runs/", {**RUN, "name": "second", "dataset": ml_dataset["id"]},
                         format="json").json()["id"]
    deadline = time.time() + 240
    while Run.objects.get(pk=first).stage not in ("baseline", "distilled"):
        assert time.time() < deadline
        time.sleep(0.2)
    server = redis.Redis(host="127.0.0.1", port=6379)
    try:
        server.shutdown(nosave=True)
    except redis.exceptions.ConnectionError:
        pass  # the server closes the connection as it stops
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "",
                    "--appendonly", "no"], check=True)
    for _ in range(50):
        try:
            if server.ping():
                break
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)
    assert poll(client, first)["status"] == "succeeded"
    assert poll(client, second)["status"] == "succeeded"


def test_a_bigrec_teacher_fans_out_over_gpu_shards_and_merges_like_one_job(worker, client, tmp_path):
    """teacher {backend: hf, shards: 2}: two shard tasks on the gpu queue, merged, then the run
    goes on; the merged teacher has the bytes of an unsharded run of the same teacher."""
    from django.conf import settings

    from distill.data import PreparedDataset
    from distill.teacher.bigrec import BigRecOptions, bigrec_teacher
    from distill.teacher.tiny import build_tiny_llm
    from webapp.studio.pipeline import teacher_dir
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()
    titles = [f"The {w.title()} Story ({1980 + i})" for i, w in enumerate(words)]
    interactions = "user_id,item_id,timestamp\n" + "".join(
        f"{u},{(u + step) % len(titles)},{u * 100 + step}\n" for u in range(30) for step in range(8))
    items = "item_id,title\n" + "".join(f"{i},{t}\n" for i, t in enumerate(titles))
    response = upload(client, name="films", fmt="csv", interactions=("i.csv", interactions.encode()),
                      items=("t.csv", items.encode()))
    assert response.status_code == 201, response.content
    model = settings.STORAGE_ROOT / "models" / "tiny"
    build_tiny_llm(model, titles)
    teacher = {"backend": "hf", "model": str(model), "k": 5, "max_new_tokens": 6, "block": 32, "batch": 16,
               "latency_requests": 2, "max_empty": 1.0, "shards": 2}
    run_id = client.post("/api/runs/", {**RUN, "name": "sharded", "teacher": teacher, "distill": {"lam": 0.3,
                                        "candidate_k": 5}, "dataset": response.json()["id"]},
                         format="json").json()["id"]
    body = poll(client, run_id)
    assert body["status"] == "succeeded", body["error"]
    assert "teacher" in body["metrics"] and body["latency"]["teacher"]["p50_ms"] > 0
    log = worker.log.read_text()
    assert "studio.teacher_shard" in log
    run = Run.objects.get(pk=run_id)
    dataset = PreparedDataset.load(run.dataset.prepared_dir)
    options = {k: v for k, v in teacher.items() if k not in ("backend", "model", "shards")}
    bigrec_teacher(dataset, tmp_path / "whole", model, options=BigRecOptions(backend="hf", **options),
                   cache=tmp_path / "cache")
    for name in ("ranks.safetensors", "teacher.json", "generations.jsonl", "metrics.json"):
        assert (tmp_path / "whole" / name).read_bytes() == (teacher_dir(run) / name).read_bytes(), name


def test_a_stage_that_keeps_dying_fails_the_run_with_the_reason(worker, client, ml_dataset):
    """The worker is SIGKILLed every time it works on the run: after RUN_MAX_ATTEMPTS (2 here)
    deliveries of the same stage the run fails, saying why, instead of looping forever."""
    run_id = client.post("/api/runs/", {**RUN, "name": "doomed", "train": {"epochs": 200},
                                        "dataset": ml_dataset["id"]}, format="json").json()["id"]
    deadline = time.time() + 300
    kills = 0
    while kills < 2:
        run = Run.objects.get(pk=run_id)
        assert time.time() < deadline, run.stage_message
        if run.stage == "baseline" and run.attempts == kills + 1 and \
                EpochMetric.objects.filter(run_id=run_id, role="baseline").exists():
            worker.kill()
            kills += 1
            EpochMetric.objects.filter(run_id=run_id).delete()
            worker.start()
        time.sleep(0.2)
    body = poll(client, run_id, timeout=120)
    assert body["status"] == "failed"
    assert "stage 'baseline' was started 2 times and never finished" in body["error"]
    assert "RUN_MAX_ATTEMPTS=2" in body["error"]
