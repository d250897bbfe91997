"""Trained students kept loaded in memory (LRU), so /recommend answers in milliseconds."""

from __future__ import annotations

import threading
from collections import OrderedDict

from webapp.studio.models import Run


class StudentCache:
    """The distilled students of the most recently queried runs, `size` at most."""

    def __init__(self, size: int = 16) -> None:
        self.size, self.lock, self.models = size, threading.Lock(), OrderedDict()

    def get(self, run: Run):
        from distill.inference import TrainedStudent
        from webapp.studio.stages import student_dir
        with self.lock:
            if run.pk in self.models:
                self.models.move_to_end(run.pk)
                return self.models[run.pk]
        student = TrainedStudent.load(student_dir(run, "distilled"))
        with self.lock:
            self.models[run.pk] = student
            while len(self.models) > self.size:
                self.models.popitem(last=False)
        return student

    def pop(self, run_id: int) -> None:
        with self.lock:
            self.models.pop(run_id, None)


students = StudentCache()
