"""Trained students kept loaded in memory (LRU), so /recommend answers in milliseconds; the
students of the most recently finished runs are loaded when the web process starts (`preload`), so
the first request after a restart does not pay for reading the model."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from webapp.studio.models import Run

log = logging.getLogger(__name__)


class StudentCache:
    """The served students (run, role) of the most recently queried runs, `size` at most."""

    def __init__(self, size: int = 16) -> None:
        self.size, self.lock, self.models = size, threading.Lock(), OrderedDict()
        self.loading: dict[tuple[int, str], threading.Event] = {}

    def get(self, run: Run, role: str = "distilled"):
        """The loaded student; loaded now unless cached. A request that comes while the same student
        is being loaded (by the preload, or another request) waits for that load instead of
        repeating it."""
        from distill.inference import TrainedStudent
        from webapp.studio.stages import student_dir
        key = (run.pk, role)
        with self.lock:
            if key in self.models:
                self.models.move_to_end(key)
                return self.models[key]
            pending = self.loading.get(key)
            if pending is None:
                pending = self.loading[key] = threading.Event()
                mine = True
            else:
                mine = False
        if not mine:
            pending.wait(timeout=60)
            with self.lock:
                if key in self.models:
                    return self.models[key]
            return self.get(run, role)      # that load failed: try (and report) it here
        try:
            student = TrainedStudent.load(student_dir(run, role))
            with self.lock:
                self.models[key] = student
                while len(self.models) > self.size:
                    self.models.popitem(last=False)
        finally:
            with self.lock:
                self.loading.pop(key, None)
            pending.set()
        return student

    def loaded(self, run_id: int, role: str = "distilled") -> bool:
        with self.lock:
            return (run_id, role) in self.models

    def pop(self, run_id: int) -> None:
        with self.lock:
            for key in [key for key in self.models if key[0] == run_id]:
                del self.models[key]

    def preload(self, count: int) -> list[int]:
        """Load the distilled students of the `count` most recently finished succeeded runs (every
        owner's; at most the cache's size), oldest first so the newest is the last evicted. A run
        whose files are gone is skipped. Returns the run ids loaded."""
        count = min(count, self.size)
        if count <= 0:
            return []
        runs = list(Run.objects.filter(status=Run.Status.SUCCEEDED).exclude(finished_at=None)
                    .order_by("-finished_at", "-pk").select_related("dataset")[:count])
        loaded = []
        for run in reversed(runs):
            try:
                self.get(run)
            except Exception as exc:          # a missing or unreadable model: served on demand, or a 400 then
                log.warning("preload: run %s not loaded (%s)", run.pk, exc)
                continue
            loaded.append(run.pk)
        return loaded


students = StudentCache()


def preload_in_background(count: int) -> threading.Thread:
    """The URL configuration (with every view module) and `students.preload(count)` in a daemon
    thread (the web process answers meanwhile; a request for a student being loaded waits for it)."""
    def work() -> None:
        from django.db import connection
        from django.urls import get_resolver
        try:
            get_resolver().url_patterns       # imports the views, the API and their serializers
            loaded = students.preload(count)
            if loaded:
                log.info("preloaded the students of runs %s", ", ".join(map(str, loaded)))
        except Exception:
            log.warning("preload failed", exc_info=True)
        finally:
            connection.close()

    thread = threading.Thread(target=work, name="student-preload", daemon=True)
    thread.start()
    return thread
