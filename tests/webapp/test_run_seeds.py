"""A run over several seeds, end to end with a real worker on ML-100k: per-seed students, their
mean and t interval, the paired comparison with its p-value, what was chosen, the reliability report."""

import pytest

from webapp.studio.models import Metric, Run
from tests.factories import poll_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SEEDED = {"name": "three seeds", "student": "sasrec", "teacher": {"kind": "titles"}, "distill": {"lam": 0.5},
          "train": {"epochs": 1}, "seeds": 3}


@pytest.fixture
def seeded(worker, client, ml_dataset):
    response = client.post("/api/runs/", {**SEEDED, "dataset": ml_dataset["id"]}, format="json")
    assert response.status_code == 201, response.content
    body = poll_run(client, response.json()["id"], timeout=900)
    assert body["status"] == "succeeded", body["error"]
    return body


def test_each_role_reports_the_mean_and_t_interval_over_its_seeds(seeded):
    assert seeded["config"]["seeds"] == [0, 1, 2]
    for role in ("baseline", "distilled"):
        per_seed = seeded["per_seed"][role]
        assert [s["seed"] for s in per_seed] == [0, 1, 2]
        values = [s["test"]["ndcg@20"] for s in per_seed]
        interval = seeded["uncertainty"][role]["test"]["ndcg@20"]
        assert interval["n"] == 3 and interval["mean"] == pytest.approx(sum(values) / 3)
        assert interval["ci95"][0] <= interval["mean"] <= interval["ci95"][1] and interval["std"] > 0
        # metrics[role][split][metric] stays one number: the mean over seeds
        assert seeded["metrics"][role]["test"]["ndcg@20"] == pytest.approx(interval["mean"])
        assert Metric.objects.get(run_id=seeded["id"], role=role, split="test", metric="ndcg", k=20).value \
            == pytest.approx(interval["mean"])


def test_the_comparison_pairs_users_over_the_seeds_with_a_p_value(seeded):
    from distill.data import PreparedDataset
    paired = seeded["comparison"]["distilled_vs_baseline"]
    test_users = PreparedDataset.load(Run.objects.get(pk=seeded["id"]).dataset.prepared_dir).test.user
    assert paired["n_users"] == len(set(test_users.tolist())) and paired["test"] == "wilcoxon signed-rank"
    assert 0 <= paired["p_value"] <= 1
    assert paired["ci95_pct"][0] <= paired["gain_pct"] <= paired["ci95_pct"][1]
    assert seeded["comparison"]["seeds"] == {"distilled": [0, 1, 2], "baseline": [0, 1, 2]}


def test_chosen_says_each_seeds_best_epoch_and_why_training_stopped(seeded):
    distilled = seeded["chosen"]["distilled"]
    assert distilled["lam"] == 0.5 and len(distilled["best_epoch"]) == 3
    assert distilled["best_epoch"] == [1, 1, 1] and distilled["epochs_run"] == [1, 1, 1]
    # one epoch of one allowed: the cap ended training, and the run says so
    assert distilled["stopped_by"] == "epochs" and distilled["epochs"] == 1


def test_the_reliability_report_covers_every_role(seeded):
    report = seeded["report"]
    assert set(report["beyond_accuracy"]) == {"teacher", "baseline", "distilled"}
    assert 0 < report["beyond_accuracy"]["distilled"]["coverage"] <= 1
    assert [b["bucket"] for b in report["by_popularity"]["buckets"]] == ["head", "torso", "tail"]
    shares = report["hits"]
    assert sum(shares[part]["distilled"] for part in ("teacher_only", "student_only", "both", "neither")) \
        == pytest.approx(1, abs=1e-5)


def test_the_run_page_shows_the_interval_and_the_verdict_over_seeds(seeded, web):
    page = web.get(f"/runs/{seeded['id']}/").content.decode()
    assert "Over 3 seeds (0, 1, 2)" in page and "over 3 seeds" in page
    assert "Teacher (TF-IDF on titles)" in page and "Reliability" in page
    assert "The epoch cap, not early stopping, ended training" in page


def test_the_served_student_is_the_first_seeds(seeded, client):
    from distill.inference import TrainedStudent
    from webapp.studio.stages import student_dir
    run = Run.objects.get(pk=seeded["id"])
    response = client.post(f"/api/runs/{run.pk}/recommend/", {"history": ["50", "172"], "k": 3}, format="json")
    assert response.status_code == 200, response.content
    assert student_dir(run, "distilled").name == "seed-0"
    ids, _ = TrainedStudent.load(student_dir(run, "distilled")).recommend(["50", "172"], 3)
    assert [item["id"] for item in response.json()["items"]] == list(ids)


def test_the_runs_list_says_which_lambda_was_used_and_that_the_cap_ended_training(seeded, client, web):
    listed = next(r for r in client.get("/api/runs/").json()["results"] if r["id"] == seeded["id"])
    assert listed["chosen"]["distilled"]["lam"] == 0.5 and listed["chosen"]["distilled"]["stopped_by"] == "epochs"
    assert "λ=0.5, capped" in web.get("/runs/").content.decode()
