"""`manage.py import_dataset` takes what an upload takes (files or a folder, format, options) and
prepares the dataset at once, for a named owner."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from webapp.studio.models import Dataset
from tests.factories import CSV_OK, ITEMS_OK, ML100K

pytestmark = pytest.mark.django_db


def test_a_folder_is_recognised_and_prepared_for_its_owner(user, capsys):
    call_command("import_dataset", str(ML100K), "--owner", "alice", "--name", "ml100k")
    dataset = Dataset.objects.get(pk=int(capsys.readouterr().out.strip()))
    assert dataset.status == "ready" and dataset.format == "movielens"
    assert dataset.stats["items"] == 1682 and dataset.owner == user


def test_files_with_options_as_flags(user, tmp_path, capsys):
    (tmp_path / "reviews.csv").write_bytes(CSV_OK.replace(b"user_id", b"reviewerID"))
    (tmp_path / "meta.csv").write_bytes(ITEMS_OK)
    call_command("import_dataset", str(tmp_path / "reviews.csv"), str(tmp_path / "meta.csv"), "--owner", "alice",
                 "--user-col", "reviewerID", "--split", "loo")
    dataset = Dataset.objects.get(pk=int(capsys.readouterr().out.strip()))
    assert dataset.stats["split"] == "loo" and dataset.stats["users"] == 7


def test_a_reader_error_is_the_commands_error(user, tmp_path):
    (tmp_path / "reviews.csv").write_bytes(CSV_OK.replace(b"user_id", b"reviewerID"))
    (tmp_path / "meta.csv").write_bytes(ITEMS_OK)
    with pytest.raises(CommandError, match="reviews.csv: no column 'user_id'.*--user-col"):
        call_command("import_dataset", str(tmp_path), "--owner", "alice")


def test_an_unknown_owner_is_refused(db):
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("import_dataset", str(ML100K), "--owner", "nobody")
