"""The dashboard's pages need a login and show only the user's own objects: anonymous visitors are
sent to the login page, another user's objects are 404; the login and logout pages."""

import pytest
from django.test import Client

from webapp.studio.models import Run
from tests.factories import finished_run

pytestmark = pytest.mark.django_db


PAGES = ["/", "/runs/", "/runs/new/", "/runs/compare/?ids={run},{run2}", "/runs/{run}/", "/datasets/",
         "/datasets/upload/", "/datasets/{dataset}/", "/accounts/", "/runs/live/?ids={run}", "/runs/{run}/curves/"]


def fill(pages, **ids):
    return [page.format(**ids) for page in pages]


def test_anonymous_users_are_sent_to_login_from_every_page(anonymous, dataset, user):
    run, run2 = finished_run(user, dataset), finished_run(user, dataset, name="two")
    browser = Client()
    for page in fill(PAGES, run=run.pk, run2=run2.pk, dataset=dataset.pk):
        response = browser.get(page)
        assert response.status_code == 302, page
        assert response["Location"].startswith("/accounts/login/?next="), page
    for action in ("cancel", "retry", "delete"):
        assert browser.post(f"/runs/{run.pk}/{action}/")["Location"].startswith("/accounts/login/")
    assert Run.objects.filter(pk=run.pk).exists()


def test_every_page_renders_for_its_owner_and_another_users_objects_are_404(web, web_bob, dataset, user):
    run, run2 = finished_run(user, dataset), finished_run(user, dataset, name="two")
    for page in fill(PAGES, run=run.pk, run2=run2.pk, dataset=dataset.pk):
        assert web.get(page).status_code == 200, page
    artifact = run.artifacts.get()
    for page in (f"/runs/{run.pk}/", f"/datasets/{dataset.pk}/", f"/runs/compare/?ids={run.pk},{run2.pk}",
                 f"/runs/{run.pk}/artifacts/{artifact.pk}/", f"/runs/new/?from={run.pk}", f"/runs/{run.pk}/curves/"):
        assert web_bob.get(page).status_code == 404, page
    for action in ("cancel", "retry", "delete"):
        assert web_bob.post(f"/runs/{run.pk}/{action}/").status_code == 404
    assert Run.objects.filter(pk=run.pk).exists()
    assert web_bob.get(f"/runs/live/?ids={run.pk}").json() == {"runs": []}
    # Bob's own pages list none of Alice's objects.
    for page in ("/", "/runs/", "/datasets/"):
        body = web_bob.get(page).content.decode()
        assert f"/runs/{run.pk}/" not in body and f"/datasets/{dataset.pk}/" not in body, page


def test_login_page_logs_in_and_logout_needs_a_post(user):
    browser = Client()
    page = browser.get("/accounts/login/?next=/runs/")
    assert page.status_code == 200 and b'name="password"' in page.content
    wrong = browser.post("/accounts/login/", {"username": "alice", "password": "nope", "next": "/runs/"})
    assert b"Wrong username or password" in wrong.content
    right = browser.post("/accounts/login/", {"username": "alice", "password": "alice-password-123", "next": "/runs/"})
    assert right.status_code == 302 and right["Location"] == "/runs/"
    assert browser.get("/runs/").status_code == 200
    assert browser.get("/accounts/logout/").status_code == 405          # a link cannot log you out
    assert browser.get("/runs/").status_code == 200
    logout = browser.post("/accounts/logout/")
    assert logout.status_code == 302 and logout["Location"] == "/accounts/login/"   # LOGOUT_REDIRECT_URL
    assert browser.get("/runs/").status_code == 302
