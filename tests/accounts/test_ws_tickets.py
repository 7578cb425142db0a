"""WebSocket tickets: short-lived, single-use, bound to the user and their token; API tokens
are not accepted in the URL."""

from __future__ import annotations

import json
import time
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.core import signing

from apps.accounts.models import UsedSocketTicket
from apps.accounts.services import token_create, token_revoke, ws_ticket_create, ws_ticket_redeem
from tests.core.ws import TIMEOUT, run, socket, ticket_for

pytestmark = pytest.mark.django_db


async def _opens(ticket: str) -> tuple[bool, int | None]:
    comm = socket(ticket)
    connected, code = await comm.connect(timeout=TIMEOUT)
    if connected:
        await comm.disconnect()
    return connected, code


# A consumer's disconnect closes the thread's database connection (Channels' close_old_connections),
# so scenarios disconnect last and query nothing afterwards.
def test_a_ticket_from_the_api_opens_one_socket_once(api_client, make_user):
    user = make_user("analyst")
    _, key = token_create(user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    ticket = api_client.post("/api/auth/ws-ticket/").json()["ticket"]

    async def scenario():
        comm = socket(ticket)
        assert (await comm.connect(timeout=TIMEOUT))[0]
        assert (await comm.receive_json_from(timeout=TIMEOUT))["user"] == user.username

        assert await _opens(ticket) == (False, 4401)  # replayed
        assert await sync_to_async(UsedSocketTicket.objects.count)() == 1
        await comm.disconnect()

    run(scenario)


def test_an_api_token_in_the_url_is_not_accepted(make_user):
    _, key = token_create(make_user("analyst"))

    async def scenario():
        comm = socket(path=f"/ws/ping/?token={key}")
        assert await comm.connect(timeout=TIMEOUT) == (False, 4401)

    run(scenario)


def test_an_expired_ticket_is_refused(make_user):
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 61):
        ticket = ticket_for(make_user("analyst"))

    async def scenario():
        assert await _opens(ticket) == (False, 4401)

    run(scenario)


def test_a_tampered_ticket_is_refused(make_user):
    victim, attacker = make_user("admin"), make_user("agent")
    payload, rest = ticket_for(attacker).split(":", 1)
    claims = json.loads(signing.b64_decode(payload.encode()))
    assert claims["u"] == attacker.pk  # readable: signed, not hidden
    forged = signing.b64_encode(json.dumps({**claims, "u": victim.pk}, separators=(",", ":")).encode()).decode()

    assert ws_ticket_redeem(f"{forged}:{rest}") is None
    assert ws_ticket_redeem("") is None and ws_ticket_redeem("not-a-ticket") is None
    assert not UsedSocketTicket.objects.exists()


def test_a_ticket_bound_to_a_revoked_token_is_refused(make_user):
    user = make_user("analyst")
    token, _ = token_create(user)
    ticket = ticket_for(user, token)
    token_revoke(token)

    assert ws_ticket_redeem(ticket) is None


def test_a_ticket_of_a_deactivated_user_is_refused(make_user):
    user = make_user("analyst")
    ticket = ticket_for(user)
    user.is_active = False
    user.save()

    assert ws_ticket_redeem(ticket) is None


def test_redeeming_names_the_user_and_the_token(make_user):
    user = make_user("analyst")
    token, _ = token_create(user)

    grant = ws_ticket_redeem(ws_ticket_create(user, token=token))
    session_grant = ws_ticket_redeem(ws_ticket_create(user))

    assert (grant.user, grant.token_id) == (user, token.pk)
    assert (session_grant.user, session_grant.token_id) == (user, None)


def test_used_markers_of_expired_tickets_are_pruned(make_user):
    user = make_user("analyst")
    ws_ticket_redeem(ticket_for(user))
    UsedSocketTicket.objects.update(expires_at="2000-01-01T00:00:00Z")

    ws_ticket_redeem(ticket_for(user))

    assert UsedSocketTicket.objects.count() == 1


def test_a_ticket_redeems_once(make_user):
    ticket = ticket_for(make_user("analyst"))

    results = [ws_ticket_redeem(ticket), ws_ticket_redeem(ticket)]

    assert [r is not None for r in results] == [True, False]


def test_the_ws_ticket_api_binds_the_ticket_to_the_callers_token(api_client, make_user):
    user = make_user("analyst")
    token, key = token_create(user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    ticket = api_client.post("/api/auth/ws-ticket/").json()["ticket"]

    async def scenario():
        grant = await sync_to_async(ws_ticket_redeem)(ticket)
        assert grant.token_id == token.pk

    run(scenario)
