"""/runs/<id>/: the numbers stored for a run (metrics, gain, latency, overlap, stages, curves),
its artifacts and its log."""

import pytest

from webapp.studio.models import Artifact
from webapp.studio.stages import STAGE_NAMES
from tests.factories import finished_run

pytestmark = pytest.mark.django_db


def test_run_detail_shows_metrics_gain_latency_overlap_artifacts_and_log(web, dataset, user):
    run = finished_run(user, dataset, teacher=0.10, baseline=0.08, distilled=0.12)
    body = web.get(f"/runs/{run.pk}/").content.decode()
    assert "+50.0%" in body                       # distilled vs baseline at every K
    assert "120%" in body                         # distilled / teacher NDCG@20
    assert "2000×" in body                        # 3000 ms / 1.5 ms
    assert "25%" in body and "62%" in body        # top-20 overlap
    assert "baseline: training sasrec" in body
    for stage in STAGE_NAMES:
        assert f"<strong>{stage}</strong> <span>done</span>" in body
    assert 'id="chart-data"' in body and "chart-4.6.1.umd.min.js" in body
    curves = web.get(f"/runs/{run.pk}/curves/").json()["curves"]
    assert [c["label"] for c in curves] == ["Student, baseline", "Student, distilled, λ=0.5"]
    assert curves[1]["epoch"] == [1, 2, 3] and curves[1]["ndcg"] == [0.01, 0.02, 0.03]
    artifact = run.artifacts.get()
    download = web.get(f"/runs/{run.pk}/artifacts/{artifact.pk}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b'{"test": {}}'
    assert "attachment" in download["Content-Disposition"]
    # An artifact row pointing outside the storage root is never served.
    outside = Artifact.objects.create(run=run, kind="x", path="/etc/passwd", size=1, sha256="0" * 64)
    assert web.get(f"/runs/{run.pk}/artifacts/{outside.pk}/").status_code == 404


def test_run_detail_opens_with_the_verdict_its_interval_and_p_value(web, dataset, user):
    run = finished_run(user, dataset)
    run.analysis["comparison"] = {
        "distilled_vs_baseline": {"metric": "ndcg@20", "split": "test", "gain_pct": 12.0, "ci95_pct": [3.0, 20.5],
                                  "p_value": 0.0041, "test": "wilcoxon signed-rank", "n_users": 943},
        "distilled_vs_teacher": {"metric": "ndcg@20", "split": "test", "gain_pct": -4.25, "ci95_pct": [-9.0, 1.0],
                                 "p_value": 0.21, "test": "wilcoxon signed-rank", "n_users": 943}}
    run.save()
    body = web.get(f"/runs/{run.pk}/").content.decode()
    verdict = body[body.index('id="verdict-h"'):body.index('id="stages-h"')]
    assert ("Distilled sasrec vs the plain student: +12.0% NDCG@20 [95% CI +3.0%, +20.5%], p = 0.0041 "
            "(wilcoxon signed-rank, 943 users, over 1 seed)") in verdict
    assert "vs the teacher: -4.2% NDCG@20 [95% CI -9.0%, +1.0%], p = 0.21" in verdict
