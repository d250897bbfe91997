"""The Celery app, configured from Django settings (CELERY_* names; JSON only, acks_late,
reject_on_worker_lost, a visibility timeout above the longest time limit). Its tasks are the
`tasks` modules of the INSTALLED_APPS (`webapp/studio/tasks.py`), found by autodiscovery."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("dllm2rec")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
