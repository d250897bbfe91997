"""/healthz: database and broker reachable (no auth: for load balancers and probes)."""

from __future__ import annotations

from celery import current_app
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """Database and broker reachable: 200, else 503 with what failed (no auth: for probes)."""
    problems = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        problems["database"] = type(exc).__name__
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        problems["broker"] = type(exc).__name__
    if problems:
        return JsonResponse({"status": "unavailable", **problems}, status=503)
    return JsonResponse({"status": "ok"})
