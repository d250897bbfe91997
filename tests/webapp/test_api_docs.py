"""/api/docs/ and /api/schema/ need a login like every page, and the docs page loads Swagger UI
from the app's own static files (drf-spectacular-sidecar), never from a CDN."""

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def referenced(page: str) -> list[str]:
    """Every src= and href= of the page."""
    return re.findall(r'(?:src|href)="([^"]*)"', page)


def test_anonymous_browsers_are_sent_from_the_docs_to_the_login_page():
    response = Client().get("/api/docs/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/api/docs/"


def test_anonymous_api_clients_get_401_for_the_schema(anonymous):
    assert anonymous.get("/api/schema/").status_code == 401


def test_the_docs_page_loads_nothing_from_another_host(web):
    response = web.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui-bundle.js" in page
    outside = [url for url in referenced(page) if not url.startswith("/") or url.startswith("//")]
    assert outside == [], outside
    assert not re.search(r"<(?:script|link)[^>]+https?://", page)


def test_swagger_ui_is_served_by_the_app(web):
    files = [url for url in referenced(web.get("/api/docs/").content.decode()) if url.startswith("/static/")]
    assert any(url.endswith("swagger-ui-bundle.js") for url in files), files
    for url in files:
        assert web.get(url).status_code == 200, url
