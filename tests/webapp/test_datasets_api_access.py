"""/api/datasets/ is scoped to its owner: another user gets 404, no credentials 401."""

import pytest

from tests.factories import upload

pytestmark = pytest.mark.django_db


def test_another_user_gets_404_and_no_credentials_401(client, other_client, anonymous, ml_dataset):
    path = f"/api/datasets/{ml_dataset['id']}/"
    assert other_client.get(path).status_code == 404
    assert other_client.delete(path).status_code == 404
    assert other_client.get("/api/datasets/").json()["results"] == []
    assert anonymous.get(path).status_code == 401
    assert anonymous.get("/api/datasets/").status_code == 401
    assert upload(anonymous).status_code == 401
