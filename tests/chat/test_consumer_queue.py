"""ws/chat/queue/: the agents' queue, live; agents' state changes on a conversation socket."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from apps.chat.models import Conversation, Message
from apps.chat.services.live import queue_changed
from tests.chat.chat_ws import (
    TIMEOUT,
    conversation_new,
    queue_socket,
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


def test_queue_is_for_agents_only(make_user):
    tickets = [ticket_for(make_user("analyst"))]

    async def scenario():
        from channels.testing import WebsocketCommunicator

        from config.asgi import application
        from tests.core.ws import ORIGIN

        assert await WebsocketCommunicator(application, "/ws/chat/queue/", headers=ORIGIN).connect(timeout=TIMEOUT) == (
            False,
            4401,
        )
        assert await queue_socket(tickets[0]).connect(timeout=TIMEOUT) == (False, 4403)

    run(scenario)


def test_queue_follows_hand_off_take_over_and_close(make_user):
    agent_user = make_user("agent", username="bob")
    queue_ticket, conv_ticket = ticket_for(agent_user), ticket_for(agent_user)
    conversation, token = conversation_new()
    quiet, _ = conversation_new()  # with the assistant: never in the queue

    async def scenario():
        queue = queue_socket(queue_ticket)
        assert (await queue.connect(timeout=TIMEOUT))[0]
        assert await queue.receive_json_from(timeout=TIMEOUT) == {"type": "queue", "conversations": []}

        customer, _ = await visitor_connect(conversation, token)
        await customer.send_json_to({"type": "handoff"})
        [entry] = (await queue.receive_json_from(timeout=TIMEOUT))["conversations"]
        assert entry["public_id"] == str(conversation.public_id)
        assert (entry["status"], entry["handoff_reason"], entry["agent"]) == ("waiting", "asked", None)
        assert entry["waiting_s"] >= 0 and entry["priority"] == 0

        await customer.send_json_to({"type": "message", "text": "My parcel never arrived"})
        await until_type(customer, "message")
        await queue.send_json_to({"type": "refresh"})
        [entry] = (await queue.receive_json_from(timeout=TIMEOUT))["conversations"]
        assert entry["last_message"] == {"role": "customer", "text": "My parcel never arrived"}

        agent, _ = await user_connect(conversation, conv_ticket)
        await agent.send_json_to({"type": "take_over"})
        [entry] = (await queue.receive_json_from(timeout=TIMEOUT))["conversations"]
        assert (entry["status"], entry["agent"]) == ("agent", "bob")
        await agent.send_json_to({"type": "message", "text": "Let me check.", "generator": "draft"})
        await until_type(customer, "status")  # the take-over
        reply = (await until_type(customer, "message"))[-1]["message"]
        assert (reply["role"], reply["generator"], reply["author"]) == ("agent", "draft", "bob")

        await agent.send_json_to({"type": "close"})
        assert (await queue.receive_json_from(timeout=TIMEOUT))["conversations"] == []
        assert (await until_type(customer, "status"))[-1] == {"type": "status", "status": "closed", "agent": "bob"}

        await sync_to_async(queue_changed)()  # what a REST view or a task calls
        assert (await queue.receive_json_from(timeout=TIMEOUT))["type"] == "queue"
        for comm in (queue, customer, agent):
            await comm.disconnect()

    run(scenario)
    conversation.refresh_from_db()
    quiet.refresh_from_db()
    assert conversation.status == "closed" and quiet.status == "bot"
    assert Message.objects.filter(conversation=conversation, role="agent", generator="draft").count() == 1


def test_waiting_queue_puts_priority_first(make_user):
    ticket = ticket_for(make_user("agent"))
    calm, _ = conversation_new()
    upset, _ = conversation_new()
    Conversation.objects.filter(pk=calm.pk).update(status="waiting", handoff_reason="asked")
    Conversation.objects.filter(pk=upset.pk).update(status="waiting", handoff_reason="angry", priority=1)

    async def scenario():
        queue = queue_socket(ticket)
        await queue.connect(timeout=TIMEOUT)
        entries = (await queue.receive_json_from(timeout=TIMEOUT))["conversations"]
        assert [e["public_id"] for e in entries] == [str(upset.public_id), str(calm.public_id)]
        await queue.disconnect()

    run(scenario)
