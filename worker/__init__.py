"""Celery workers: the app (configured from Django settings), its signals (the run-recovery
watchdog) and the `run_worker` entry. The tasks live in the Django app (`webapp/studio/tasks.py`)
and are found by autodiscovery; nothing under `webapp/` imports this package."""

from worker.app import app

__all__ = ["app"]
