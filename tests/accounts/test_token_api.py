"""Token API under /api/auth/: obtain, me, rotate, revoke, list, revoke by id, ws-ticket.

Tokens are stored as digests, shown once, expire, and belong to one user."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.accounts.models import ApiToken
from apps.accounts.services import token_create

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


def _obtain(api_client, username, password=PASSWORD):
    return api_client.post("/api/auth/token/", {"username": username, "password": password}, format="json")


def _as(api_client, key):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api_client


def test_good_credentials_give_a_token_shown_once_with_its_expiry(api_client, make_user):
    user = make_user("analyst")

    response = _obtain(api_client, user.username)

    assert response.status_code == 200
    body = response.json()
    assert body["username"] == user.username
    assert body["roles"] == ["analyst"]
    stored = ApiToken.objects.get(user=user)
    assert body["token_id"] == stored.pk
    assert stored.digest != body["token"] and body["token"] not in stored.digest  # only a digest is kept
    expected = timezone.now() + timedelta(hours=720)
    assert abs(parse_datetime(body["expiry"]) - expected) < timedelta(minutes=1)


def test_expiry_follows_the_setting(api_client, make_user, settings):
    settings.TRELLIS_TOKEN_TTL_HOURS = 2
    user = make_user("analyst")

    expiry = parse_datetime(_obtain(api_client, user.username).json()["expiry"])

    assert abs(expiry - (timezone.now() + timedelta(hours=2))) < timedelta(minutes=1)


def test_each_login_gives_a_new_token_and_both_work(api_client, make_user):
    user = make_user("agent")

    first, second = (_obtain(api_client, user.username).json()["token"] for _ in range(2))

    assert first != second
    for key in (first, second):
        assert _as(api_client, key).get("/api/auth/me/").status_code == 200


@pytest.mark.parametrize(("username_suffix", "password"), [("", "wrong-password"), ("-nobody", PASSWORD)])
def test_bad_credentials_are_refused_in_the_error_shape(api_client, make_user, username_suffix, password):
    user = make_user("analyst")

    response = _obtain(api_client, user.username + username_suffix, password)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert "token" not in response.json()
    assert not ApiToken.objects.exists()


def test_inactive_user_gets_no_token(api_client, make_user):
    user = make_user("analyst")
    user.is_active = False
    user.save()

    assert _obtain(api_client, user.username).status_code == 400


def test_token_authenticates_me(api_client, make_user):
    user = make_user("merchandiser", "analyst")
    token = _obtain(api_client, user.username).json()["token"]

    response = _as(api_client, token).get("/api/auth/me/")

    assert response.status_code == 200
    assert response.json() == {"id": user.id, "username": user.username, "roles": ["analyst", "merchandiser"]}


def test_unknown_token_is_401(api_client):
    response = _as(api_client, "0" * 64).get("/api/auth/me/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_expired_token_is_401(api_client, make_user):
    _, key = token_create(make_user("analyst"), ttl=timedelta(hours=1))
    ApiToken.objects.update(expiry=timezone.now() - timedelta(seconds=1))

    assert _as(api_client, key).get("/api/auth/me/").status_code == 401


def test_deactivated_users_token_stops_working(api_client, make_user):
    user = make_user("analyst")
    _, key = token_create(user)
    user.is_active = False
    user.save()

    assert _as(api_client, key).get("/api/auth/me/").status_code == 401


def test_rotate_replaces_the_token_and_the_old_one_stops_working(api_client, make_user):
    user = make_user("agent")
    old = _obtain(api_client, user.username).json()["token"]
    _, other = token_create(user)  # another of the user's tokens: untouched by the rotation

    rotated = _as(api_client, old).post("/api/auth/token/rotate/")

    assert rotated.status_code == 200
    new = rotated.json()["token"]
    assert new != old
    assert rotated.json()["expiry"]
    assert _as(api_client, old).get("/api/auth/me/").status_code == 401
    assert _as(api_client, new).get("/api/auth/me/").json()["username"] == user.username
    assert _as(api_client, other).get("/api/auth/me/").status_code == 200


def test_rotate_needs_authentication(api_client):
    response = api_client.post("/api/auth/token/rotate/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_rotate_and_revoke_need_a_token_not_a_session(api_client, make_user):
    api_client.force_login(make_user("agent"))

    for path in ("/api/auth/token/rotate/", "/api/auth/token/revoke/"):
        response = api_client.post(path)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "token_required"


def test_revoke_logs_the_token_out(api_client, make_user):
    user = make_user("agent")
    _, key = token_create(user)

    response = _as(api_client, key).post("/api/auth/token/revoke/")

    assert response.status_code == 204
    assert not ApiToken.objects.filter(user=user).exists()
    assert _as(api_client, key).get("/api/auth/me/").status_code == 401


def test_list_shows_the_callers_working_tokens_never_their_keys(api_client, make_user):
    user, someone_else = make_user("analyst"), make_user("analyst")
    current, current_key = token_create(user)
    older, older_key = token_create(user)
    expired, _ = token_create(user)
    ApiToken.objects.filter(pk=expired.pk).update(expiry=timezone.now() - timedelta(minutes=1))
    token_create(someone_else)

    response = _as(api_client, current_key).get("/api/auth/tokens/")

    assert response.status_code == 200
    items = response.json()
    assert [item["id"] for item in items] == [older.pk, current.pk]  # newest first, expired left out
    assert set(items[0]) == {"id", "prefix", "created", "expiry", "current"}
    assert [item["current"] for item in items] == [False, True]
    assert items[1]["prefix"] == current_key[:8]
    text = response.content.decode()
    assert current_key not in text and older_key not in text
    assert current.digest not in text


def test_revoke_by_id_only_touches_the_callers_own_tokens(api_client, make_user):
    user, someone_else = make_user("analyst"), make_user("analyst")
    _, key = token_create(user)
    spare, spare_key = token_create(user)
    theirs, their_key = token_create(someone_else)

    foreign = _as(api_client, key).delete(f"/api/auth/tokens/{theirs.pk}/")
    missing = _as(api_client, key).delete("/api/auth/tokens/999999/")
    own = _as(api_client, key).delete(f"/api/auth/tokens/{spare.pk}/")

    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"
    assert missing.status_code == 404
    assert _as(api_client, their_key).get("/api/auth/me/").status_code == 200
    assert own.status_code == 204
    assert _as(api_client, spare_key).get("/api/auth/me/").status_code == 401
    assert _as(api_client, key).get("/api/auth/me/").status_code == 200


def test_ws_ticket_for_a_token_or_a_session_not_for_anonymous(api_client, make_user):
    user = make_user("analyst")
    _, key = token_create(user)

    with_token = _as(api_client, key).post("/api/auth/ws-ticket/")
    api_client.credentials()
    anonymous = api_client.post("/api/auth/ws-ticket/")
    api_client.force_login(user)
    with_session = api_client.post("/api/auth/ws-ticket/")

    assert with_token.status_code == 200
    assert with_token.json()["expires_in"] == 60
    assert key not in with_token.json()["ticket"]
    assert anonymous.status_code == 401
    assert with_session.status_code == 200
    assert with_session.json()["ticket"] != with_token.json()["ticket"]


def test_the_admin_lists_tokens_without_keys_and_deleting_one_revokes_it(client, api_client, make_user):
    user = make_user("analyst")
    token, key = token_create(user)
    client.force_login(make_user("admin"))

    page = client.get("/admin/accounts/apitoken/")
    deleted = client.post(f"/admin/accounts/apitoken/{token.pk}/delete/", {"post": "yes"})

    assert page.status_code == 200
    html = page.content.decode()
    assert key[:8] in html and key not in html and token.digest not in html
    assert deleted.status_code == 302
    assert _as(api_client, key).get("/api/auth/me/").status_code == 401


def test_rotate_and_revoke_are_in_the_audit_log(api_client, make_user):
    # given a user signed in with a token
    from apps.accounts.services import token_create
    from apps.audit.models import AuditEvent

    user = make_user("analyst")
    _, key = token_create(user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    # when they rotate it, then revoke the new one
    new_key = api_client.post("/api/auth/token/rotate/").json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {new_key}")
    assert api_client.post("/api/auth/token/revoke/").status_code in (200, 204)
    # then both are recorded with who did it and from where
    events = list(AuditEvent.objects.filter(actor=user).order_by("created_at"))
    assert [e.action for e in events] == ["token.rotate", "token.revoke"]
    assert all(e.ip_address == "127.0.0.1" for e in events)


def test_password_change_revocation_is_in_the_audit_log(make_user):
    from apps.accounts.services import token_create
    from apps.audit.models import AuditEvent

    user = make_user("agent")
    token_create(user)
    user.set_password("a-new-password-456")
    user.save()
    event = AuditEvent.objects.get(action="token.revoke_all")
    assert event.actor == user and "password changed" in event.summary
