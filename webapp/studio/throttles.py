"""The request budgets (scopes `uploads`, `runs`, `token`; rates in REST_FRAMEWORK's
DEFAULT_THROTTLE_RATES): one counter per scope and user (per client address when anonymous,
`webapp.studio.clientip.client_ip`), spent by the API's POSTs and the dashboard's forms alike, so
a user throttled on one is throttled on the other."""

from __future__ import annotations

import math
from types import SimpleNamespace

from rest_framework.throttling import ScopedRateThrottle

from webapp.studio.clientip import client_ip

# What a scope counts, in the dashboard's refusal ("too many uploads: try again in 12 s").
SCOPE_NOUNS = {"uploads": "uploads", "runs": "run requests", "token": "token requests",
               "recommend": "recommendation requests", "exports": "exports"}


class UploadThrottle(ScopedRateThrottle):
    """DRF's per-scope throttle on POSTs only (reading is never throttled)."""

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)

    def get_ident(self, request):
        return client_ip(request)


class CostThrottle(UploadThrottle):
    """The same budget on every method: for reads that cost (an export builds and checks a model)."""

    def allow_request(self, request, view):
        return ScopedRateThrottle.allow_request(self, request, view)


def check_rate(request, scope: str) -> float | None:
    """Spend one POST of `scope` from the budget the API's throttle spends (a Django or a DRF
    request): None while within it, else the seconds until the next one is allowed."""
    throttle = UploadThrottle()
    if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope)):
        return None
    return throttle.wait() or 1.0


def too_many(scope: str, seconds: float) -> str:
    """The refusal a throttled form shows."""
    return f"too many {SCOPE_NOUNS.get(scope, scope)}: try again in {math.ceil(seconds)} s"
