"""The web process loads the students of the most recently finished runs when it starts, so the first
/recommend after a restart reads no model."""

import datetime

import pytest
from django.utils import timezone

from tests.factories import served_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache():
    from webapp.studio.inference import StudentCache
    return StudentCache(size=4)


def test_preload_loads_the_most_recently_finished_runs(user, cache):
    from webapp.studio.models import Run
    runs = [served_run(user, name=f"run {i}") for i in range(3)]
    for age, run in enumerate(reversed(runs)):
        Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - datetime.timedelta(hours=age))
    assert cache.preload(2) == [runs[1].pk, runs[2].pk]
    assert cache.loaded(runs[2].pk) and cache.loaded(runs[1].pk) and not cache.loaded(runs[0].pk)


def test_a_run_whose_files_are_gone_is_skipped(user, cache):
    import shutil

    from webapp.studio.stages import run_dir
    kept, gone = served_run(user, name="kept"), served_run(user, name="gone")
    shutil.rmtree(run_dir(gone))
    assert cache.preload(5) == [kept.pk]


@pytest.mark.django_db(transaction=True)   # the preload thread reads committed rows
def test_the_web_process_preloads_at_start(user, settings, monkeypatch):
    import importlib

    import webapp.wsgi
    from webapp.studio import inference
    run = served_run(user)
    cache = inference.StudentCache()
    monkeypatch.setattr(inference, "students", cache)
    settings.STUDENT_PRELOAD = 3
    started = []
    real = inference.preload_in_background
    monkeypatch.setattr(inference, "preload_in_background",
                        lambda count: started.append(count) or real(count))
    importlib.reload(webapp.wsgi)
    assert started == [3]
    from tests.factories import wait_until
    wait_until(lambda: cache.loaded(run.pk), 30)


def test_a_request_during_a_load_waits_for_it_instead_of_loading_again(user, cache, monkeypatch):
    import threading
    import time

    from distill.inference import TrainedStudent
    run = served_run(user)
    calls, real = [], TrainedStudent.load.__func__

    def slow_load(cls, path, *args, **kwargs):
        calls.append(path)
        time.sleep(0.5)
        return real(cls, path, *args, **kwargs)
    monkeypatch.setattr(TrainedStudent, "load", classmethod(slow_load))
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(run))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(got) == 3 and got[0] is got[1] is got[2]
