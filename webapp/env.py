"""Settings from environment variables, read through helpers that fail loudly on bad values.

Each helper names the variable and what it expects, so a typo in a deployment's environment stops
the process at start-up with one clear line instead of surfacing as odd behaviour later.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in TRUE:
        return True
    if value.strip().lower() in FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: expected a boolean (1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a whole number") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r}: must be at least {minimum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a comma-separated list, e.g. example.com,api.example.com")
    return items


def env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def database_from_url(url: str) -> dict:
    """`postgres://user:pass@host:5432/name` or `sqlite:///abs/path.sqlite3` -> a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL={_redact(url)!r}: no database name; "
                                       "expected postgres://USER:PASSWORD@HOST:PORT/NAME")
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"DATABASE_URL={_redact(url)!r}: the port is not a number") from None
        return {"ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": unquote(parts.username or ""),
                "PASSWORD": unquote(parts.password or ""), "HOST": parts.hostname or "", "PORT": str(port or ""),
                "OPTIONS": options, "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}
    if parts.scheme == "sqlite":
        # sqlite:////abs/path.sqlite3 (four slashes: absolute) or sqlite:///relative.sqlite3
        path = unquote(parts.path)
        path = path[1:]
        if not path or path == "/":
            raise ImproperlyConfigured(f"DATABASE_URL={url!r}: expected sqlite:////absolute/path/db.sqlite3")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path, "OPTIONS": {"timeout": 30}}
    raise ImproperlyConfigured(f"DATABASE_URL={_redact(url)!r}: unsupported scheme {parts.scheme!r}; use "
                               "postgres://... or sqlite:///...")


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
