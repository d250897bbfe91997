"""A run end to end with a real Celery worker on Redis and Postgres: upload ML-100k over the API,
launch a run, poll it to `succeeded`, read its metrics, curves, stage times and log, ask it for
recommendations; a second run on the same data reuses the teacher."""

import pytest

from distill.data import PreparedDataset
from webapp.studio.models import EpochMetric, Latency, Metric, Run, TeacherCacheEntry
from webapp.studio.stages import STAGE_NAMES
from tests.factories import RUN, poll_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_run_goes_from_upload_to_metrics_and_recommendations(worker, client, ml_dataset):
    response = client.post("/api/runs/", {**RUN, "dataset": ml_dataset["id"]}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"
    body = poll_run(client, response.json()["id"])
    assert body["status"] == "succeeded", body["error"]
    for role in ("teacher", "baseline", "distilled"):
        test, val = body["metrics"][role]["test"], body["metrics"][role]["val"]
        # Every model ranks some held-out items in its top 20 of ML-100k's 1,682; a cut-off of 20
        # finds at least what 10 finds, and NDCG (hit weighted by 1/log2(rank+1)) never exceeds HR.
        assert 0 < test["ndcg@20"] <= test["hr@20"] <= 1, (role, test)
        assert test["ndcg@10"] <= test["ndcg@20"] and val["hr@10"] <= val["hr@20"], (role, test, val)
        assert test["ndcg@20"] == pytest.approx(Metric.objects.get(
            run_id=body["id"], role=role, split="test", metric="ndcg", k=20).value)
    assert body["latency"]["distilled"]["p50_ms"] > 0 and body["latency"]["baseline"]["device"].startswith("cpu")
    run = Run.objects.get(pk=body["id"])
    # the students' and, measured one history at a time like BIGRec's, the semantic teacher's
    assert set(Latency.objects.filter(run=run).values_list("role", flat=True)) == {"teacher", "baseline", "distilled"}
    assert body["latency"]["teacher"]["p50_ms"] > 0
    assert EpochMetric.objects.filter(run=run, role="baseline").count() == 2
    curves = client.get(f"/api/runs/{run.pk}/curves/").json()["curves"]
    assert {c["role"] for c in curves} == {"baseline", "distilled"}
    # What the dashboard shows: stage timings, the teacher/student top-20 overlap, the log.
    assert set(run.stage_times) == set(STAGE_NAMES) and all(t["seconds"] > 0 for t in run.stage_times.values())
    overlap = run.analysis["overlap"]
    assert overlap["k"] == 20 and 0 <= overlap["baseline"] <= 1 and 0 <= overlap["distilled"] <= 1
    log = [e.message for e in run.events.all()]
    assert log[0] == "teacher: started (attempt 1)" and log[-1] == "run succeeded"
    # The evidence: a paired test over the test users (vs plain and vs teacher), what was chosen.
    users = len(set(PreparedDataset.load(run.dataset.prepared_dir).test.user.tolist()))
    for key in ("distilled_vs_baseline", "distilled_vs_teacher"):
        paired = body["comparison"][key]
        assert paired["n_users"] == users and 0 <= paired["p_value"] <= 1, paired
        assert paired["ci95_pct"][0] <= paired["gain_pct"] <= paired["ci95_pct"][1], paired
    assert body["chosen"]["distilled"]["lam"] == 0.5 and 1 <= body["chosen"]["distilled"]["best_epoch"] <= 2

    recommended = client.post(f"/api/runs/{run.pk}/recommend/", {"history": ["50", "172", "181"], "k": 5},
                              format="json")
    assert recommended.status_code == 200, recommended.content
    items = recommended.json()["items"]
    ids = [item["id"] for item in items]
    assert len(items) == 5 and not {"50", "172", "181"} & set(ids)
    assert all(item["title"] and isinstance(item["score"], float) for item in items)
    assert [item["score"] for item in items] == sorted((item["score"] for item in items), reverse=True)
    bad = client.post(f"/api/runs/{run.pk}/recommend/", {"history": ["no-such-item"]}, format="json")
    assert bad.status_code == 400 and "no-such-item" in bad.json()["history"][0]

    # The same teacher on the same data is computed once (an earlier test may have left its files:
    # then the first run was a hit too, and the entry is indexed again).
    entries = list(TeacherCacheEntry.objects.values_list("key", "hits"))
    assert len(entries) == 1
    again = client.post("/api/runs/", {**RUN, "name": "again", "dataset": ml_dataset["id"]}, format="json").json()
    done = poll_run(client, again["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["metrics"]["teacher"] == body["metrics"]["teacher"]
    assert "teacher: cached" in Run.objects.get(pk=again["id"]).events.values_list("message", flat=True)
    assert list(TeacherCacheEntry.objects.values_list("key", "hits")) == [(entries[0][0], entries[0][1] + 1)]
