"""GET /api/runs/ filters (tag, status, student, dataset) and GET /api/runs/compare/."""

import pytest

pytestmark = pytest.mark.django_db


def test_filters_and_compare(client, queued, ml_dataset):
    assert [r["id"] for r in client.get("/api/runs/?tag=nightly").json()["results"]] == [queued["id"]]
    assert client.get("/api/runs/?tag=weekly").json()["results"] == []
    assert client.get("/api/runs/?status=queued&student=sasrec").json()["count"] == 1
    assert client.get(f"/api/runs/?dataset={ml_dataset['id']}").json()["count"] == 1
    assert client.get("/api/runs/?dataset=x").status_code == 400
    compared = client.get(f"/api/runs/compare/?ids={queued['id']}").json()["runs"]
    assert compared[0]["id"] == queued["id"] and compared[0]["metrics"] == {}
    assert client.get("/api/runs/compare/?ids=a,b").status_code == 400
    assert client.get("/api/runs/compare/?ids=999999").status_code == 404


@pytest.mark.parametrize("query, field", [("status=queued%00", "status"), ("tag=a%00b", "tag"),
                                          ("student=%00", "student"), ("dataset=%C2%B2", "dataset")])
def test_a_filter_the_database_cannot_compare_is_a_400_naming_it(client, query, field):
    response = client.get(f"/api/runs/?{query}")
    assert response.status_code == 400 and field in response.json()
