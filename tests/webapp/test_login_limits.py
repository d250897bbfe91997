"""Login brute force: the login form, the admin login and the token endpoint lock a client address
and a username out after LOGIN_FAILURE_LIMIT failures (django-axes), counted in the shared cache so
every web process sees one count; a client-sent X-Forwarded-For does not reset anything."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.factories import ROOT, free_port, unit_tier, wait_until

GOOD = {"username": "alice", "password": "alice-password-123"}
WRONG = {"username": "alice", "password": "not-her-password"}


@pytest.fixture(autouse=True)
def _fast_hashing(request):
    """Many logins per test: a cheap hasher in this process (the gunicorn tests keep the default,
    which their server verifies)."""
    if "gunicorn" not in request.fixturenames:
        request.getfixturevalue("fast_passwords")


def fail(client, path, times, data=WRONG, **extra):
    for _ in range(times):
        client.post(path, data, **extra)


def test_the_login_form_locks_out_after_the_failure_limit(user):
    browser = Client()
    fail(browser, "/accounts/login/", django_settings.AXES_FAILURE_LIMIT)
    response = browser.post("/accounts/login/", GOOD)
    assert response.status_code == 429
    assert b"too many failed logins" in response.content
    assert "_auth_user_id" not in browser.session


def test_a_failure_or_two_does_not_lock_anyone_out(user):
    browser = Client()
    fail(browser, "/accounts/login/", 2)
    assert browser.post("/accounts/login/", GOOD).status_code == 302


def test_the_admin_login_locks_out_too(django_user_model):
    django_user_model.objects.create_superuser("root", password="root-password-123")
    browser = Client()
    fail(browser, "/admin/login/", django_settings.AXES_FAILURE_LIMIT, {"username": "root", "password": "x"})
    response = browser.post("/admin/login/", {"username": "root", "password": "root-password-123"})
    assert response.status_code == 429
    assert b"too many failed logins" in response.content
    assert "_auth_user_id" not in browser.session


def test_the_token_endpoint_locks_out_with_a_429(user, anonymous):
    fail(anonymous, "/api/auth/token/", django_settings.AXES_FAILURE_LIMIT, format="json")
    response = anonymous.post("/api/auth/token/", GOOD, format="json")
    assert response.status_code == 429
    assert "token" not in response.json() and "too many failed logins" in response.json()["detail"]


def test_a_forged_forwarded_for_header_does_not_reset_the_count(user, anonymous):
    for i in range(django_settings.AXES_FAILURE_LIMIT):
        anonymous.post("/api/auth/token/", {"username": f"nobody{i}", "password": "x"}, format="json",
                       HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
    response = anonymous.post("/api/auth/token/", GOOD, format="json", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert response.status_code == 429


def test_a_trusted_proxys_forwarded_for_counts_each_client_on_its_own(user, anonymous, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    for i in range(settings.AXES_FAILURE_LIMIT):
        anonymous.post("/api/auth/token/", {"username": f"nobody{i}", "password": "x"}, format="json",
                       HTTP_X_FORWARDED_FOR="203.0.113.7", REMOTE_ADDR="127.0.0.1")
    locked = anonymous.post("/api/auth/token/", GOOD, format="json", HTTP_X_FORWARDED_FOR="203.0.113.7",
                            REMOTE_ADDR="127.0.0.1")
    other = anonymous.post("/api/auth/token/", GOOD, format="json", HTTP_X_FORWARDED_FOR="198.51.100.2",
                           REMOTE_ADDR="127.0.0.1")
    assert (locked.status_code, other.status_code) == (429, 200)


def test_failures_for_one_username_lock_that_username_from_any_address(user, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    for i in range(settings.AXES_FAILURE_LIMIT):
        Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").post("/accounts/login/", WRONG)
    fresh = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert fresh.post("/accounts/login/", GOOD).status_code == 429


# ----------------------------------------------------------------------------- a real gunicorn

@pytest.fixture
def gunicorn(transactional_db, django_user_model):
    """The app under gunicorn with 2 processes x 4 threads (as in the Dockerfile), on the test
    database and the shared cache; alice exists (committed)."""
    if unit_tier():
        pytest.fail("needs Postgres and Redis: run it without STUDIO_TEST_DB=sqlite")
    from django.db import connection
    django_user_model.objects.create_user(**GOOD)
    port = free_port()
    log = django_settings.STORAGE_ROOT / f"gunicorn-{port}.log"
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "webapp.wsgi", "--workers", "2", "--threads", "4",
                                "--bind", f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=open(log, "ab"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    import requests

    def up():
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False
    try:
        wait_until(up, 60, 0.2, lambda: "gunicorn did not start:\n" + log.read_text(errors="replace")[-3000:])
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.integration
def test_the_token_throttle_counts_once_across_gunicorn_processes(gunicorn):
    import requests
    rate = int(django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"].split("/")[0])
    # Bad requests (no password): throttled like any other, but no login failure for the lockout.
    codes = [requests.post(f"{gunicorn}/api/auth/token/", json={}, timeout=10).status_code
             for _ in range(rate + 10)]
    assert codes.count(429) == 10 and codes[:rate] == [400] * rate


@pytest.mark.integration
def test_the_lockout_holds_across_gunicorn_processes(gunicorn):
    import requests
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        requests.post(f"{gunicorn}/api/auth/token/", json=WRONG, timeout=10)
    answers = [requests.post(f"{gunicorn}/api/auth/token/", json=GOOD, timeout=10) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [429] * 4
