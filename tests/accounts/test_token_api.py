"""Token API: /api/auth/token/, /api/auth/me/, /api/auth/token/rotate/."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


def _obtain(api_client, username, password=PASSWORD):
    return api_client.post("/api/auth/token/", {"username": username, "password": password}, format="json")


def test_good_credentials_give_a_token_with_roles(api_client, make_user):
    user = make_user("analyst")

    response = _obtain(api_client, user.username)

    assert response.status_code == 200
    body = response.json()
    assert body["username"] == user.username
    assert body["roles"] == ["analyst"]
    assert Token.objects.get(user=user).key == body["token"]


def test_obtaining_twice_returns_the_same_token(api_client, make_user):
    user = make_user("agent")

    assert _obtain(api_client, user.username).json()["token"] == _obtain(api_client, user.username).json()["token"]


@pytest.mark.parametrize(("username_suffix", "password"), [("", "wrong-password"), ("-nobody", PASSWORD)])
def test_bad_credentials_are_refused_in_the_error_shape(api_client, make_user, username_suffix, password):
    user = make_user("analyst")

    response = _obtain(api_client, user.username + username_suffix, password)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert "token" not in response.json()
    assert not Token.objects.exists()


def test_inactive_user_gets_no_token(api_client, make_user):
    user = make_user("analyst")
    user.is_active = False
    user.save()

    assert _obtain(api_client, user.username).status_code == 400


def test_token_authenticates_me(api_client, make_user):
    user = make_user("merchandiser", "analyst")
    token = _obtain(api_client, user.username).json()["token"]

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api_client.get("/api/auth/me/")

    assert response.status_code == 200
    assert response.json() == {"id": user.id, "username": user.username, "roles": ["analyst", "merchandiser"]}


def test_unknown_token_is_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    response = api_client.get("/api/auth/me/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_rotate_replaces_the_token_and_the_old_one_stops_working(api_client, make_user):
    user = make_user("agent")
    old = _obtain(api_client, user.username).json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {old}")

    rotated = api_client.post("/api/auth/token/rotate/")

    assert rotated.status_code == 200
    new = rotated.json()["token"]
    assert new != old
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert api_client.get("/api/auth/me/").status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert api_client.get("/api/auth/me/").json()["username"] == user.username


def test_rotate_needs_authentication(api_client):
    response = api_client.post("/api/auth/token/rotate/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
