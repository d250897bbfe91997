"""The run-recovery watchdog: a worker that starts recovers lost runs at once, then every half
RUN_STALE_SECONDS for as long as it lives (`webapp.studio.tasks.recover_stale_runs`)."""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)
_watchdog_stop = threading.Event()


@worker_ready.connect
def _start_watchdog(**_kwargs) -> None:
    """Recover lost runs now, then every half RUN_STALE_SECONDS, for as long as the worker lives."""
    from webapp.studio.tasks import recover_stale_runs

    def loop() -> None:
        while True:
            try:
                recover_stale_runs()
            except Exception:
                log.warning("run recovery failed; retrying", exc_info=True)
            finally:
                close_old_connections()
            if _watchdog_stop.wait(max(1.0, settings.RUN_STALE_SECONDS / 2)):
                return
    threading.Thread(target=loop, name="run-recovery", daemon=True).start()


@worker_shutdown.connect
def _stop_watchdog(**_kwargs) -> None:
    _watchdog_stop.set()
