"""`manage.py import_dataset` prepares a dataset like an upload, for a named owner."""

import pytest

from webapp.studio.models import Dataset
from tests.factories import ML100K

pytestmark = pytest.mark.django_db


def test_import_dataset_command_prepares_like_an_upload(user, capsys):
    from django.core.management import call_command
    call_command("import_dataset", str(ML100K), "--format", "movielens", "--owner", "alice", "--name", "ml100k")
    dataset = Dataset.objects.get(pk=int(capsys.readouterr().out.strip()))
    assert dataset.status == "ready" and dataset.stats["items"] == 1682 and dataset.owner == user
    from django.core.management.base import CommandError
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("import_dataset", str(ML100K), "--format", "movielens", "--owner", "nobody")
