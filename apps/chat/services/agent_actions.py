"""What an agent does to a conversation from outside a socket (the REST API for programmatic
agents): the state change or message through ``services.conversations``, then the same frames
the chat consumer would send, so customers and agents watching on any ASGI server see it.

Frames go to the conversation's group ``chat.conv.<public_id hex>`` and a queue refresh to
``chat.queue`` through ``services.live`` (the socket's broadcaster). Broadcasting happens after
the transaction commits: a socket never shows a change that was rolled back.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.chat.models import Conversation, Message
from apps.chat.services import live
from apps.chat.services.conversations import (
    agent_display_name,
    agent_message_add,
    conversation_close,
    conversation_hand_back,
    conversation_take_over,
    message_payload,
)


def _status_frame(conversation: Conversation) -> dict[str, Any]:
    agent = conversation.assigned_agent
    return {
        "type": "status",
        "status": conversation.status,
        "agent": agent_display_name(agent) if agent is not None else None,
    }


def _announce(conversation: Conversation, message: Message | None, *, status_changed: bool) -> None:
    frames: list[dict[str, Any]] = []
    if message is not None:
        frames.append({"type": "message", "message": message_payload(message)})
    if status_changed:
        frames.append(_status_frame(conversation))

    def send() -> None:
        for frame in frames:
            live.conversation_broadcast(conversation, frame)
        if status_changed:
            live.queue_changed()

    transaction.on_commit(send)


def agent_take_over(conversation: Conversation, agent: Any) -> Message | None:
    """``conversation_take_over`` + broadcast; None when this agent already had it (nothing sent)."""
    message = conversation_take_over(conversation, agent)
    if message is not None:
        _announce(conversation, message, status_changed=True)
    return message


def agent_hand_back(conversation: Conversation, agent: Any) -> Message:
    message = conversation_hand_back(conversation, agent)
    _announce(conversation, message, status_changed=True)
    return message


def agent_close(conversation: Conversation, agent: Any) -> Message:
    message = conversation_close(conversation, by=agent)
    _announce(conversation, message, status_changed=True)
    return message


def agent_reply(
    conversation: Conversation, agent: Any, text: str, *, generator: str = Message.Generator.AGENT
) -> Message:
    message = agent_message_add(conversation, agent, text, generator=generator)
    _announce(conversation, message, status_changed=False)
    return message
