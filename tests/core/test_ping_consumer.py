"""ws/ping/ through the real ASGI stack (origin check, session/ticket auth, channel layer)."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings
from django.test import override_settings

from tests.core.ws import ORIGIN, TIMEOUT, receive_until, run, socket, ticket_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def ticket_of(make_user):
    def make(*roles: str) -> str:
        return ticket_for(make_user(*roles))

    return make


def test_anonymous_is_closed_with_4401():
    async def scenario():
        connected, code = await socket().connect(timeout=TIMEOUT)
        assert (connected, code) == (False, 4401)

    run(scenario)


def test_forged_ticket_is_closed_with_4401():
    async def scenario():
        connected, code = await socket("f" * 40).connect(timeout=TIMEOUT)
        assert (connected, code) == (False, 4401)

    run(scenario)


def test_foreign_origin_is_refused(ticket_of):
    ticket = ticket_of("analyst")

    async def scenario():
        comm = socket(ticket, headers=[(b"origin", b"http://evil.example"), (b"host", b"testserver")])
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert not connected

    run(scenario)


def test_ticket_user_gets_hello_pong_and_echo(ticket_of):
    ticket = ticket_of("analyst")

    async def scenario():
        comm = socket(ticket)
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected
        hello = await comm.receive_json_from(timeout=TIMEOUT)
        assert hello["type"] == "hello"
        assert hello["user"].startswith("analyst-")
        assert hello["server"] == settings.SERVER_NAME

        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from(timeout=TIMEOUT) == {"type": "pong", "server": settings.SERVER_NAME}

        await comm.send_json_to({"type": "echo", "text": "héllo ✓"})
        assert await comm.receive_json_from(timeout=TIMEOUT) == {"type": "echo", "text": "héllo ✓"}
        await comm.disconnect()

    run(scenario)


def test_session_cookie_signs_in_too(client, make_user):
    user = make_user("agent")
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    async def scenario():
        comm = socket(headers=[*ORIGIN, (b"cookie", cookie.encode())])
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected
        assert (await comm.receive_json_from(timeout=TIMEOUT))["user"] == user.username
        await comm.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("this is not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"no": "type"}', "invalid_message"),
        ('{"type": "dance"}', "unknown_type"),
    ],
)
def test_bad_frame_gets_an_error_frame_and_the_socket_stays_open(ticket_of, frame, code):
    ticket = ticket_of("analyst")

    async def scenario():
        comm = socket(ticket)
        await comm.connect(timeout=TIMEOUT)
        await comm.receive_json_from(timeout=TIMEOUT)  # hello

        await comm.send_to(text_data=frame)
        error = await comm.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error"
        assert error["code"] == code
        assert error["message"]

        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from(timeout=TIMEOUT))["type"] == "pong"
        await comm.disconnect()

    run(scenario)


@override_settings(WEBSOCKET_MAX_FRAME_BYTES=100)
def test_oversized_frame_is_refused(ticket_of):
    ticket = ticket_of("analyst")

    async def scenario():
        comm = socket(ticket)
        await comm.connect(timeout=TIMEOUT)
        await comm.receive_json_from(timeout=TIMEOUT)  # hello

        await comm.send_to(text_data=json.dumps({"type": "echo", "text": "x" * 200}))
        assert (await comm.receive_json_from(timeout=TIMEOUT))["code"] == "frame_too_large"
        await comm.disconnect()

    run(scenario)


def test_non_admin_may_not_broadcast(ticket_of):
    ticket = ticket_of("analyst")
    text = f"not-allowed-{uuid.uuid4().hex}"

    async def scenario():
        comm = socket(ticket)
        await comm.connect(timeout=TIMEOUT)
        await comm.receive_json_from(timeout=TIMEOUT)  # hello

        await comm.send_json_to({"type": "broadcast", "text": text})
        error = await comm.receive_json_from(timeout=TIMEOUT)
        assert (error["type"], error["code"]) == ("error", "forbidden")

        await comm.send_json_to({"type": "ping"})
        frames = await receive_until(comm, lambda f: f["type"] == "pong")
        assert not [f for f in frames if f.get("text") == text]  # this socket is in the group too
        await comm.disconnect()

    run(scenario)


def test_admin_broadcast_reaches_every_socket(ticket_of):
    listener_ticket, admin_ticket = ticket_of("analyst"), ticket_of("admin")
    text = f"hello-all-{uuid.uuid4().hex}"

    async def scenario():
        listener, admin = socket(listener_ticket), socket(admin_ticket)
        for comm in (listener, admin):
            assert (await comm.connect(timeout=TIMEOUT))[0]
            assert (await comm.receive_json_from(timeout=TIMEOUT))["type"] == "hello"

        await admin.send_json_to({"type": "broadcast", "text": text})

        for comm in (listener, admin):
            frames = await receive_until(comm, lambda f: f.get("text") == text)
            assert frames[-1] == {"type": "broadcast", "text": text, "origin": settings.SERVER_NAME}
        await listener.disconnect()
        await admin.disconnect()

    run(scenario)
