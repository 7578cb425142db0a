"""ws/chat/<id>/: who may open a conversation's socket, from which page, how many at once."""

from __future__ import annotations

import uuid

import pytest
from django.core import signing
from django.test import override_settings

from tests.chat.chat_ws import (
    SHOP,
    TIMEOUT,
    chat_socket,
    closed_with,
    conversation_new,
    user_connect,
    visitor_connect,
)
from tests.core.ws import run, ticket_for

pytestmark = pytest.mark.django_db(transaction=True)  # sockets close DB connections on disconnect


def test_visitor_hello_with_its_token_gets_the_history():
    conversation, token = conversation_new()

    async def scenario():
        comm, history = await visitor_connect(conversation, token)
        assert history["conversation"] == {
            "public_id": str(conversation.public_id),
            "status": "bot",
            "handoff_reason": "",
            "agent": None,
        }
        assert history["messages"] == []
        await comm.disconnect()

    run(scenario)


def test_visitor_a_cannot_open_b_with_its_own_token():
    a, token_a = conversation_new()
    b, _ = conversation_new()

    async def scenario():
        comm = chat_socket(b)
        assert (await comm.connect(timeout=TIMEOUT))[0]
        await comm.send_json_to({"type": "hello", "token": token_a})
        assert await closed_with(comm) == 4403

    run(scenario)


@pytest.mark.parametrize(
    "token",
    [
        "forged",
        "0" * 32 + ":" + "1" * 32 + ":AAAAAA:bad-signature",
        None,
        12345,
    ],
)
def test_forged_or_missing_token_closes_with_4401(token):
    conversation, _ = conversation_new()

    async def scenario():
        comm = chat_socket(conversation)
        await comm.connect(timeout=TIMEOUT)
        await comm.send_json_to({"type": "hello", "token": token})
        assert await closed_with(comm) == 4401

    run(scenario)


def test_expired_token_closes_with_4401():
    conversation, token = conversation_new()

    async def scenario():
        comm = chat_socket(conversation)
        await comm.connect(timeout=TIMEOUT)
        await comm.send_json_to({"type": "hello", "token": token})
        assert await closed_with(comm) == 4401

    with override_settings(TRELLIS_CHAT_TOKEN_MAX_AGE_S=-1):  # every token is older than that
        run(scenario)


def test_token_signed_for_a_deleted_visitor_is_4404():
    conversation, _ = conversation_new()
    from apps.chat.services.conversations import TOKEN_SALT

    other_visitor = signing.TimestampSigner(salt=TOKEN_SALT).sign(f"{conversation.public_id.hex}:{uuid.uuid4().hex}")

    async def scenario():
        comm = chat_socket(conversation)
        await comm.connect(timeout=TIMEOUT)
        await comm.send_json_to({"type": "hello", "token": other_visitor})
        assert await closed_with(comm) == 4404

    run(scenario)


def test_no_hello_in_time_closes_with_4401():
    conversation, _ = conversation_new()

    async def scenario():
        comm = chat_socket(conversation)
        await comm.connect(timeout=TIMEOUT)
        await comm.send_json_to({"type": "message", "text": "hi"})
        assert (await comm.receive_json_from(timeout=TIMEOUT))["code"] == "hello_required"
        assert await closed_with(comm) == 4401

    with override_settings(TRELLIS_CHAT_HELLO_TIMEOUT_S=0.3):
        run(scenario)


def test_unknown_conversation_is_4404():
    conversation, _ = conversation_new()
    conversation.public_id = uuid.uuid4()  # never stored

    async def scenario():
        assert await chat_socket(conversation).connect(timeout=TIMEOUT) == (False, 4404)

    run(scenario)


def test_signed_in_owner_and_agent_need_no_token(make_user):
    customer = make_user(username="shopper")
    conversation, _ = conversation_new(customer=customer)
    signed_in = [ticket_for(customer), ticket_for(make_user("agent"))]

    async def scenario():
        for ticket in signed_in:
            comm, history = await user_connect(conversation, ticket)
            assert history["conversation"]["public_id"] == str(conversation.public_id)
            await comm.disconnect()

    run(scenario)


def test_signed_in_stranger_still_needs_the_token(make_user):
    conversation, _ = conversation_new(customer=make_user(username="owner"))
    stranger = ticket_for(make_user("analyst"))

    async def scenario():
        comm = chat_socket(conversation, ticket=stranger)
        assert (await comm.connect(timeout=TIMEOUT))[0]
        await comm.send_json_to({"type": "message", "text": "let me read"})
        assert (await comm.receive_json_from(timeout=TIMEOUT))["code"] == "hello_required"
        await comm.send_json_to({"type": "hello"})
        assert await closed_with(comm) == 4401

    run(scenario)


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (SHOP.encode(), True),  # listed on the conversation's route
        (b"http://testserver", True),  # our own host
        (b"https://evil.example", False),
        (b"null", False),
        (None, False),
    ],
)
def test_widget_origins(origin, accepted):
    conversation, token = conversation_new()

    async def scenario():
        comm = chat_socket(conversation, origin=origin)
        connected, code = await comm.connect(timeout=TIMEOUT)
        assert connected is accepted
        if accepted:
            await comm.send_json_to({"type": "hello", "token": token})
            assert (await comm.receive_json_from(timeout=TIMEOUT))["type"] == "history"
            await comm.disconnect()
        else:
            assert code == 4403

    run(scenario)


def test_another_routes_origin_is_refused():
    conversation, _ = conversation_new(origins=("https://other-brand.example",), key="other")
    conversation_new()  # the "shop" route lists SHOP, not this conversation's route

    async def scenario():
        assert await chat_socket(conversation, origin=SHOP.encode()).connect(timeout=TIMEOUT) == (False, 4403)

    run(scenario)


def test_widget_origin_does_not_open_the_agents_queue(make_user):
    conversation_new()
    ticket = ticket_for(make_user("agent"))

    async def scenario():
        comm = chat_socket(None, path=f"/ws/chat/queue/?ticket={ticket}", origin=SHOP.encode())
        assert not (await comm.connect(timeout=TIMEOUT))[0]

    run(scenario)


@override_settings(TRELLIS_CHAT_SOCKETS_PER_IP=2)
def test_visitor_sockets_per_address_are_capped():
    conversation, token = conversation_new()

    async def scenario():
        first, _ = await visitor_connect(conversation, token)
        second, _ = await visitor_connect(conversation, token)
        assert await chat_socket(conversation).connect(timeout=TIMEOUT) == (False, 4429)
        other_address = chat_socket(conversation, client=("198.51.100.9", 1))
        assert (await other_address.connect(timeout=TIMEOUT))[0]
        await other_address.disconnect()
        await first.disconnect()
        third, _ = await visitor_connect(conversation, token)  # a slot came free
        await second.disconnect()
        await third.disconnect()

    run(scenario)
