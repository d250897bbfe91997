"""Celery workers: the app (configured from Django settings) and thin tasks over the run stages."""

from worker.app import app

__all__ = ["app"]
