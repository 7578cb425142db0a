"""ws/chat/<id>/: bad frames and limits get an error frame (socket usable) or a close code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

from apps.chat.models import Conversation, Feedback, Message
from tests.chat.chat_ws import (
    TIMEOUT,
    chat_socket,
    closed_with,
    conversation_new,
    redaction_warm,
    until_type,
    user_connect,
    visitor_connect,
)
from tests.core.ws import run, ticket_for

pytestmark = pytest.mark.django_db(transaction=True)  # sockets close DB connections on disconnect


@pytest.fixture(autouse=True)
def _warm() -> None:
    redaction_warm()


def waiting_conversation() -> tuple[Conversation, str]:
    """A conversation in the agents' queue: messages are stored, the assistant stays quiet."""
    conversation, token = conversation_new()
    Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.WAITING, handoff_reason="asked")
    return conversation, token


async def still_usable(comm: Any, text: str = "still here") -> None:
    await comm.send_json_to({"type": "message", "text": text})
    frame = await comm.receive_json_from(timeout=TIMEOUT)
    assert frame["type"] == "message" and frame["message"]["text"] == text


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("this is not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"text": "no type"}', "invalid_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "__init__"}', "unknown_type"),
        ('{"type": "message"}', "invalid_message"),
        ('{"type": "message", "text": 42}', "invalid_message"),
        ('{"type": "message", "text": "   \\n "}', "empty"),
        ('{"type": "message", "text": "hi", "client_id": ""}', "invalid_message"),
        (json.dumps({"type": "message", "text": "hi", "client_id": "x" * 65}), "invalid_message"),
        (json.dumps({"type": "message", "text": "x" * 2001}), "too_long"),
        ('{"type": "feedback", "message_id": "7", "helpful": true}', "message_invalid"),
        ('{"type": "feedback", "message_id": 999999, "helpful": true}', "message_invalid"),
        ('{"type": "rating", "rating": 9}', "message_invalid"),
        ('{"type": "rating", "rating": 5, "comment": ["x"]}', "message_invalid"),
        ('{"type": "take_over"}', "forbidden"),
        ('{"type": "close"}', "forbidden"),
        ('{"type": "draft"}', "forbidden"),
    ],
)
def test_bad_frame_gets_an_error_and_the_socket_stays_usable(frame: str, code: str):
    conversation, token = waiting_conversation()

    async def scenario():
        comm, _ = await visitor_connect(conversation, token)
        await comm.send_to(text_data=frame)
        error = await comm.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["code"] == code and error["message"]
        await still_usable(comm)
        await comm.disconnect()

    run(scenario)
    conversation.refresh_from_db()
    assert conversation.status == "waiting"  # nothing changed but the one good message
    assert list(Message.objects.filter(conversation=conversation).values_list("text", flat=True)) == ["still here"]


def test_ping_is_answered_before_and_after_hello():
    conversation, token = waiting_conversation()

    async def scenario():
        comm = chat_socket(conversation)
        assert (await comm.connect(timeout=TIMEOUT))[0]
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
        await comm.send_json_to({"type": "hello", "token": token})
        assert (await comm.receive_json_from(timeout=TIMEOUT))["type"] == "history"
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
        await comm.disconnect()

    run(scenario)


def test_message_of_exactly_the_limit_is_accepted():
    conversation, token = waiting_conversation()

    async def scenario():
        comm, _ = await visitor_connect(conversation, token)
        await still_usable(comm, "y" * 2000)
        await comm.disconnect()

    run(scenario)


def test_agent_cannot_send_customer_frames(make_user):
    conversation, _ = waiting_conversation()
    ticket = ticket_for(make_user("agent"))

    async def scenario():
        comm, _ = await user_connect(conversation, ticket)
        for kind in ("rating", "feedback", "handoff"):
            await comm.send_json_to({"type": kind})
            assert (await comm.receive_json_from(timeout=TIMEOUT))["code"] == "forbidden"
        await comm.send_json_to({"type": "message", "text": "I have not taken it over"})
        assert (await comm.receive_json_from(timeout=TIMEOUT))["code"] == "conversation_state"
        await comm.disconnect()

    run(scenario)
    assert not Message.objects.filter(conversation=conversation).exists()


@override_settings(TRELLIS_CHAT_MESSAGES_PER_MINUTE=3)
def test_messages_per_minute_are_limited_across_tabs():
    conversation, token = waiting_conversation()

    async def scenario():
        tab1, _ = await visitor_connect(conversation, token)
        tab2, _ = await visitor_connect(conversation, token)
        for n in range(3):
            await (tab1 if n % 2 else tab2).send_json_to(
                {"type": "message", "text": f"message {n}", "client_id": f"m{n}"}
            )
            for tab in (tab1, tab2):
                assert (await until_type(tab, "message"))[-1]["message"]["text"] == f"message {n}"
        await tab2.send_json_to({"type": "message", "text": "one too many", "client_id": "m3"})
        limited = await tab2.receive_json_from(timeout=TIMEOUT)
        assert limited["type"] == "error" and limited["code"] == "rate_limited"
        assert 1 <= limited["retry_after"] <= 61
        # a resend of a stored message is not a new message: it is answered, not limited
        await tab2.send_json_to({"type": "message", "text": "message 0", "client_id": "m0"})
        assert (await tab2.receive_json_from(timeout=TIMEOUT))["type"] == "message"
        await tab1.disconnect()
        await tab2.disconnect()

    run(scenario)
    assert Message.objects.filter(conversation=conversation, role="customer").count() == 3


@override_settings(TRELLIS_CHAT_FRAMES_PER_S=1, TRELLIS_CHAT_FRAME_BURST=5)
def test_a_flood_of_frames_closes_the_socket_with_4429():
    conversation, token = waiting_conversation()

    async def scenario():
        comm, _ = await visitor_connect(conversation, token)  # the hello took one frame
        for _ in range(30):
            await comm.send_to(text_data="flood")
        assert await closed_with(comm) == 4429

    run(scenario)


@override_settings(TRELLIS_CHAT_TYPING_INTERVAL_S=60)
def test_typing_is_relayed_to_the_other_side_at_most_once_per_interval(make_user):
    conversation, token = waiting_conversation()
    ticket = ticket_for(make_user("agent"))

    async def scenario():
        customer, _ = await visitor_connect(conversation, token)
        agent, _ = await user_connect(conversation, ticket)
        await customer.send_json_to({"type": "typing"})
        await customer.send_json_to({"type": "typing"})
        assert await agent.receive_json_from(timeout=TIMEOUT) == {"type": "typing", "role": "customer"}
        assert await agent.receive_nothing(timeout=0.3)  # the second was dropped
        assert await customer.receive_nothing(timeout=0.1)  # never echoed to the typist
        await agent.send_json_to({"type": "typing"})
        assert await customer.receive_json_from(timeout=TIMEOUT) == {"type": "typing", "role": "agent"}
        await customer.disconnect()
        await agent.disconnect()

    run(scenario)


def test_feedback_and_rating(make_user):
    conversation, token = waiting_conversation()
    reply = Message.objects.create(conversation=conversation, role="assistant", text="Within 30 days.")
    other, _ = conversation_new()
    foreign = Message.objects.create(conversation=other, role="assistant", text="Not yours.")

    async def scenario():
        comm, _ = await visitor_connect(conversation, token)
        await comm.send_json_to({"type": "feedback", "message_id": reply.pk, "helpful": False, "comment": "too vague"})
        assert await comm.receive_json_from(timeout=TIMEOUT) == {
            "type": "feedback",
            "message_id": reply.pk,
            "helpful": False,
        }
        await comm.send_json_to({"type": "feedback", "message_id": foreign.pk, "helpful": True})
        assert (await comm.receive_json_from(timeout=TIMEOUT))["code"] == "message_invalid"
        await comm.send_json_to({"type": "rating", "rating": 4, "comment": "quick"})
        frames = await until_type(comm, "status")
        assert frames[0] == {"type": "rating", "rating": 4}
        assert any(f["type"] == "message" and f["message"]["text"] == "Conversation closed" for f in frames)
        assert frames[-1]["status"] == "closed"
        await comm.send_json_to({"type": "message", "text": "one more thing"})
        assert (await comm.receive_json_from(timeout=TIMEOUT))["code"] == "conversation_state"
        await comm.disconnect()

    run(scenario)
    assert Feedback.objects.get(message=reply).helpful is False
    assert not Feedback.objects.filter(message=foreign).exists()
    conversation.refresh_from_db()
    assert (conversation.status, conversation.rating) == ("closed", 4)
