"""The dashboard's static files and its vendored chart library are served by the app."""

import pytest

pytestmark = pytest.mark.django_db


def test_static_files_and_chart_library_are_served_by_the_app(web):
    response = web.get("/static/studio/vendor/chart-4.6.1.umd.min.js")
    assert response.status_code == 200
    assert b"Chart" in b"".join(response.streaming_content)[:2000]
    assert web.get("/static/studio/studio.css").status_code == 200
