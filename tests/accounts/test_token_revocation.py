"""Revocation: rotate, revoke, a new password and a deactivation end tokens and close sockets (4401).

Revocations close sockets after the commit; the test transaction never commits, so the
on-commit callbacks are run by ``django_capture_on_commit_callbacks``. A consumer that ends
closes the thread's database connection (Channels), so scenarios query nothing after a close.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.forms import AdminPasswordChangeForm, PasswordChangeForm
from django.contrib.auth.hashers import make_password

from apps.accounts.models import ApiToken, User
from apps.accounts.services import token_create
from tests.core.ws import ORIGIN, TIMEOUT, run, socket, ticket_for

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"
NEW_PASSWORD = "a-new-pass-phrase-9341"


async def _open(comm) -> None:
    connected, code = await comm.connect(timeout=TIMEOUT)
    assert connected, code
    assert (await comm.receive_json_from(timeout=TIMEOUT))["type"] == "hello"


async def _closed_with(comm) -> int | None:
    """The close code the server sent (frames before it are skipped)."""
    while True:
        message = await comm.receive_output(timeout=TIMEOUT)
        if message["type"] == "websocket.close":
            return message.get("code")


async def _still_open(comm) -> bool:
    await comm.send_json_to({"type": "ping"})
    return (await comm.receive_json_from(timeout=TIMEOUT))["type"] == "pong"


def test_rotating_a_token_closes_the_sockets_opened_with_it(api_client, make_user, django_capture_on_commit_callbacks):
    user = make_user("analyst")
    token, key = token_create(user)
    other, _ = token_create(user)
    with_token, with_other = socket(ticket_for(user, token)), socket(ticket_for(user, other))

    def rotate():
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        with django_capture_on_commit_callbacks(execute=True):
            return api_client.post("/api/auth/token/rotate/")

    async def scenario():
        await _open(with_token)
        await _open(with_other)

        response = await sync_to_async(rotate)()

        assert response.status_code == 200
        assert await _closed_with(with_token) == 4401
        assert await _still_open(with_other)  # another token of the same user: untouched
        await with_other.disconnect()

    run(scenario)


def test_revoking_a_token_by_id_closes_its_sockets(api_client, make_user, django_capture_on_commit_callbacks):
    user = make_user("analyst")
    _, key = token_create(user)
    doomed, _ = token_create(user)
    comm = socket(ticket_for(user, doomed))

    def revoke():
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        with django_capture_on_commit_callbacks(execute=True):
            return api_client.delete(f"/api/auth/tokens/{doomed.pk}/")

    async def scenario():
        await _open(comm)
        assert (await sync_to_async(revoke)()).status_code == 204
        assert await _closed_with(comm) == 4401

    run(scenario)


def test_a_new_password_closes_all_the_users_sockets(client, make_user, django_capture_on_commit_callbacks):
    user, bystander = make_user("analyst"), make_user("analyst")
    token, _ = token_create(user)
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    by_ticket = socket(ticket_for(user, token))
    by_session = socket(headers=[*ORIGIN, (b"cookie", cookie.encode())])
    bystanders = socket(ticket_for(bystander))

    def change_password():
        with django_capture_on_commit_callbacks(execute=True):
            fresh = User.objects.get(pk=user.pk)
            fresh.set_password(NEW_PASSWORD)
            fresh.save()
        assert not ApiToken.objects.filter(user=user).exists()

    async def scenario():
        for comm in (by_ticket, by_session, bystanders):
            await _open(comm)

        await sync_to_async(change_password)()

        assert await _closed_with(by_ticket) == 4401
        assert await _closed_with(by_session) == 4401
        assert await _still_open(bystanders)
        await bystanders.disconnect()

    run(scenario)


def test_deactivation_revokes_the_tokens_and_closes_the_sockets(make_user, django_capture_on_commit_callbacks):
    user = make_user("analyst")
    token, _ = token_create(user)
    comm = socket(ticket_for(user, token))

    def deactivate():
        with django_capture_on_commit_callbacks(execute=True):
            fresh = User.objects.get(pk=user.pk)
            fresh.is_active = False
            fresh.save(update_fields=["is_active"])
        assert not ApiToken.objects.filter(user=user).exists()

    async def scenario():
        await _open(comm)
        await sync_to_async(deactivate)()
        assert await _closed_with(comm) == 4401

    run(scenario)


def _tokens_survive(user: User) -> bool:
    return ApiToken.objects.filter(user=user).exists()


@pytest.mark.parametrize("path", ["set_password", "password_change_form", "admin_form", "unusable"])
def test_every_way_of_changing_a_password_revokes_the_tokens(make_user, path):
    user = make_user("analyst")
    token_create(user)
    token_create(user)

    if path == "set_password":
        user.set_password(NEW_PASSWORD)
        user.save()
    elif path == "password_change_form":
        form = PasswordChangeForm(user, {"old_password": PASSWORD, "new_password1": NEW_PASSWORD,
                                         "new_password2": NEW_PASSWORD})
        assert form.is_valid(), form.errors
        form.save()
    elif path == "admin_form":
        form = AdminPasswordChangeForm(user, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert form.is_valid(), form.errors
        form.save()
    else:
        user.set_unusable_password()
        user.save()

    assert not _tokens_survive(user)


def test_the_admin_password_page_revokes_the_tokens(client, make_user):
    admin, user = make_user("admin"), make_user("analyst")
    token_create(user)
    client.force_login(admin)

    response = client.post(f"/admin/accounts/user/{user.pk}/password/",
                           {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})

    assert response.status_code == 302, response.content.decode()[:2000]
    assert not _tokens_survive(user)


def test_other_saves_and_a_rehash_at_login_keep_the_tokens(make_user, settings):
    user = make_user("analyst")
    token_create(user)

    user.first_name = "Ada"
    user.save()
    user.save(update_fields=["last_login"])
    # A password stored with an older hasher is re-hashed at the next login: same password.
    settings.PASSWORD_HASHERS = [*settings.PASSWORD_HASHERS, "django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.filter(pk=user.pk).update(password=make_password(PASSWORD, hasher="md5"))
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    user.refresh_from_db()
    assert not user.password.startswith("md5$")  # it was re-hashed and saved

    assert _tokens_survive(user)
