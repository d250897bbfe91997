"""The run page's cancel, retry and delete buttons follow the same rules as the API."""

import pytest

from webapp.studio.models import Run
from tests.factories import finished_run

pytestmark = pytest.mark.django_db


def test_cancel_retry_and_delete_buttons_follow_the_run_rules(web, dataset, user, monkeypatch):
    from webapp.studio import services
    launched = []
    monkeypatch.setattr(services, "_launch", lambda run, stage=None: launched.append((run.pk, stage)))
    run = finished_run(user, dataset)
    response = web.post(f"/runs/{run.pk}/cancel/", follow=True)
    assert "already succeeded" in response.content.decode()
    run.status, run.stage = Run.Status.FAILED, "distilled"
    run.save()
    web.post(f"/runs/{run.pk}/retry/")
    run.refresh_from_db()
    assert run.status == "queued" and launched == [(run.pk, "distilled")]
    page = web.post(f"/runs/{run.pk}/delete/", follow=True).content.decode()
    assert "cancel it first" in page and Run.objects.filter(pk=run.pk).exists()
    web.post(f"/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert web.post(f"/runs/{run.pk}/delete/").status_code == 302
    assert not Run.objects.filter(pk=run.pk).exists()
