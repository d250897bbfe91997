"""Settings come from the environment and fail loudly on bad values; production passes
`manage.py check --deploy`."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.factories import ROOT
from webapp.env import database_from_url, env_bool, env_int, env_list

PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "k" * 20 + "Q9v!x7#Lm2$Pz8&Rt4^Wb6*Yd1@Hs3%Jc5", "ALLOWED_HOSTS": "studio.example.com",
              "DATABASE_URL": "postgres://studio:secret@db:5432/studio", "CELERY_BROKER_URL": "redis://redis:6379/0",
              "CACHE_URL": "redis://redis:6379/1", "SECURE_SSL_REDIRECT": None}


def manage(*args, env):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env={k: v for k, v in {**os.environ, **env}.items() if v is not None})


def test_production_settings_pass_check_deploy():
    proc = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


def test_check_deploy_warns_when_the_limits_have_no_shared_cache():
    proc = manage("check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION, "CACHE_URL": None})
    assert proc.returncode != 0 and "studio.W001" in proc.stderr + proc.stdout


@pytest.mark.parametrize("env, fragment", [
    ({"SECRET_KEY": None}, "SECRET_KEY is not set"),
    ({"CACHE_URL": "memcached://x:11211"}, "CACHE_URL='memcached://x:11211': expected redis://"),
    ({"TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, "TRUSTED_PROXIES: 'proxy.local' is not an address"),
    ({"DEBUG": "maybe"}, "DEBUG='maybe': expected a boolean"),
    ({"UPLOAD_MAX_MB": "lots"}, "UPLOAD_MAX_MB='lots': expected a whole number"),
    ({"DATABASE_URL": "mysql://x@y/z"}, "unsupported scheme 'mysql'"),
    ({"DATABASE_URL": "postgres://studio:hunter2@db:5432/"}, "no database name"),
])
def test_bad_environment_values_stop_the_process_with_the_variable_named(env, fragment):
    proc = manage("check", env={**PRODUCTION, **env})
    assert proc.returncode != 0 and fragment in proc.stderr, proc.stderr[-2000:]
    assert "hunter2" not in proc.stderr  # passwords are redacted


def test_env_helpers(monkeypatch):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "0")
    monkeypatch.setenv("X_LIST", " a, b ,")
    assert env_bool("X_BOOL") is True and env_list("X_LIST", []) == ["a", "b"]
    with pytest.raises(ImproperlyConfigured, match="X_INT='0': must be at least 1"):
        env_int("X_INT", 5, minimum=1)
    db = database_from_url("postgres://u:p%40ss@h:6543/name?sslmode=require")
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == ("u", "p@ss", "h", "6543", "name")
    assert db["OPTIONS"] == {"sslmode": "require"}
    assert database_from_url("sqlite:////tmp/x.sqlite3")["NAME"] == "/tmp/x.sqlite3"
