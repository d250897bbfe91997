"""Deployment checks (`manage.py check --deploy`): the limits need a cache every web process shares."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def shared_cache(app_configs, **kwargs):
    if settings.CACHE_URL:
        return []
    return [Warning("CACHE_URL is not set: the API throttles count in each web process's own memory, so "
                    "with several gunicorn processes or replicas a client gets that many times the limit",
                    hint="set CACHE_URL=redis://HOST:PORT/DB (a Redis database of its own)", id="studio.W001")]
