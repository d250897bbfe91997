"""/runs/compare/: metrics side by side, the config diff and the chart data."""

import re

import pytest

from tests.factories import finished_run

pytestmark = pytest.mark.django_db


def test_compare_shows_metrics_config_diff_and_chart_data(web, dataset, user):
    a = finished_run(user, dataset, name="lam low", lam=0.1, distilled=0.10)
    b = finished_run(user, dataset, name="lam high", lam=0.9, distilled=0.14)
    page = web.get(f"/runs/compare/?ids={a.pk},{b.pk}")
    body = page.content.decode()
    assert page.status_code == 200
    assert re.search(r'<tr class="differs"><th scope="row">lam</th><td>0.1</td><td>0.9</td>', body)
    assert re.search(r'<tr class="same"><th scope="row">epochs</th>', body)
    assert '<td class="num best">0.1400</td>' in body
    import json
    chart = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', body).group(1))
    assert chart["parallel"]["axes"][0]["name"] == "lam" and chart["parallel"]["axes"][-1]["name"] == "NDCG@20"
    assert chart["parallel"]["axes"][-1]["scaled"] == [0.0, 1.0]
    assert 'class="config-diff only-diff"' in web.get(f"/runs/compare/?ids={a.pk},{b.pk}&diff=1").content.decode()
    one = web.get(f"/runs/compare/?ids={a.pk}")
    assert one.status_code == 400 and "Select 2 to 10 runs" in one.content.decode()
    assert web.get(f"/runs/compare/?ids={a.pk},999999").status_code == 404
