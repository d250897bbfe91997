"""DELETE /api/datasets/<id>/ removes the row and the prepared files."""

import pytest

from tests.factories import storage_entries

pytestmark = pytest.mark.django_db


def test_delete_removes_the_row_and_the_files(client, ml_dataset):
    assert str(ml_dataset["id"]) in storage_entries()
    assert client.delete(f"/api/datasets/{ml_dataset['id']}/").status_code == 204
    assert str(ml_dataset["id"]) not in storage_entries()
    assert client.get(f"/api/datasets/{ml_dataset['id']}/").status_code == 404
