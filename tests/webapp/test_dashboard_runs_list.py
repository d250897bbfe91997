"""/runs/: NDCG and gain per run, sorting, filters, and the live status feed."""

import pytest

from webapp.studio.models import Run
from tests.factories import finished_run

pytestmark = pytest.mark.django_db


def test_runs_list_shows_ndcg_and_gain_sorts_and_filters(web, dataset, user):
    low = finished_run(user, dataset, name="low", baseline=0.10, distilled=0.11)
    high = finished_run(user, dataset, name="high", student="gru4rec", baseline=0.10, distilled=0.15, tags=("best",))
    queued = Run.objects.create(owner=user, dataset=dataset, name="waiting", config=low.config)
    body = web.get("/runs/?sort=-ndcg").content.decode()
    assert body.index(">high<") < body.index(">low<") < body.index(">waiting<")  # missing NDCG sorts last
    assert "0.1500" in body and "+50.0%" in body and "+10.0%" in body
    assert f'data-live="{queued.pk}"' in body
    ascending = web.get("/runs/?sort=ndcg").content.decode()
    assert ascending.index(">low<") < ascending.index(">high<")
    by_gain = web.get("/runs/?sort=-gain").content.decode()
    assert by_gain.index(">high<") < by_gain.index(">low<")
    only = web.get("/runs/?student=gru4rec").content.decode()
    assert ">high<" in only and ">low<" not in only
    tagged = web.get("/runs/?tag=best").content.decode()
    assert ">high<" in tagged and ">low<" not in tagged
    assert ">waiting<" in web.get("/runs/?status=queued").content.decode()
    assert ">high<" not in web.get("/runs/?teacher=bigrec").content.decode()
    assert web.get("/runs/?sort=nonsense").status_code == 200
    live = web.get(f"/runs/live/?ids={queued.pk},{high.pk}").json()["runs"]
    assert {r["id"]: r["status"] for r in live} == {queued.pk: "queued", high.pk: "succeeded"}
