from django.apps import AppConfig


class WorkerConfig(AppConfig):
    """Makes the configured Celery app the current one in every Django process (the web process
    sends tasks through it), connects the worker's signals and provides `manage.py run_worker`."""
    name = "worker"
    label = "worker"

    def ready(self) -> None:
        from worker import app, signals  # noqa: F401
