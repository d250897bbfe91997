"""POST /api/auth/token/ and `manage.py create_api_user`."""

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_token_endpoint_and_create_api_user(user, anonymous, capsys):
    response = anonymous.post("/api/auth/token/", {"username": "alice", "password": "alice-password-123"},
                              format="json")
    assert response.status_code == 200 and len(response.json()["token"]) == 40
    wrong = anonymous.post("/api/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert wrong.status_code == 400 and "wrong username or password" in wrong.json()["detail"]
    assert anonymous.post("/api/auth/token/", {}, format="json").status_code == 400
    call_command("create_api_user", "carol")
    token = capsys.readouterr().out.strip()
    from rest_framework.test import APIClient
    carol = APIClient()
    carol.credentials(HTTP_AUTHORIZATION="Token " + token)
    assert carol.get("/api/runs/").status_code == 200
