"""/accounts/: the API token, and rotating it."""

import pytest

pytestmark = pytest.mark.django_db


def test_account_page_shows_the_api_token_and_rotates_it(web, user):
    from rest_framework.authtoken.models import Token
    page = web.get("/accounts/").content.decode()
    token = Token.objects.get(user=user).key
    assert token in page
    web.post("/accounts/", {"action": "rotate-token"})
    assert Token.objects.get(user=user).key != token
