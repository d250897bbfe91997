"""What the service benchmarks share: settings for a throwaway database, created fresh and migrated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh_database(db: str, storage: Path, **settings: str) -> None:
    """Point the settings at database `db` (dropped and created on the local Postgres, then migrated)
    and STORAGE_ROOT at `storage`; `settings` adds or overrides environment variables."""
    os.environ.update({"DJANGO_SETTINGS_MODULE": "webapp.settings", "SECRET_KEY": "bench-" + "x" * 50, "DEBUG": "0",
                       "SECURE_SSL_REDIRECT": "0", "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
                       "STORAGE_ROOT": str(storage), "LOG_LEVEL": "ERROR",
                       "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
                       **settings})
    import psycopg
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}"')
        conn.execute(f'CREATE DATABASE "{db}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)


def prepared_ml100k(ml100k: str | Path, prefix: str):
    """(a fresh temporary folder, ML-100k prepared in its data/ with the default options, loaded)."""
    import tempfile

    from distill.data import PrepareOptions, PreparedDataset, prepare_dataset
    work = Path(tempfile.mkdtemp(prefix=prefix))
    source = Path(ml100k)
    prepare_dataset("movielens", str(source / "u.data"), work / "data", items=str(source / "u.item"),
                    options=PrepareOptions())
    return work, PreparedDataset.load(work / "data")


def write_result(path: str | Path, result) -> None:
    """The benchmark's figures as JSON at `path` (its folder made if needed)."""
    import json
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
