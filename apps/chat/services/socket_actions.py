"""What a chat socket's frames do, as synchronous services (the consumer wraps each one in
``database_sync_to_async`` and broadcasts what it returns).

Each function reads the conversation again by primary key, so a change made from another
socket or server (an agent took over, the customer closed it) is seen, calls
``services.conversations`` and returns the JSON the sockets send (``Outcome``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from apps.accounts.roles import Role, user_has_role
from apps.chat.models import Conversation, Message
from apps.chat.services.conversations import (
    ConversationStateError,
    MessageInvalid,
    agent_message_add,
    conversation_can_view,
    conversation_close,
    conversation_for_token,
    conversation_hand_back,
    conversation_handoff,
    conversation_payload,
    conversation_take_over,
    customer_message_add,
    feedback_set,
    message_payload,
    rating_set,
)
from apps.chat.services.live import message_rate_check

HISTORY_MAX = 500  # messages sent on (re)connect: a long chat's latest turns


class ReplyBusy(Exception):
    """A reply is being generated for this conversation and the message is new."""


@dataclass
class Outcome:
    conversation: Conversation
    status: dict[str, Any]  # {"type": "status", "status": ..., "agent": ...}
    message: dict[str, Any] | None = None  # message_payload of what was stored
    created: bool = True
    stored: Message | None = field(default=None, repr=False)


def _load(conversation_pk: int) -> Conversation:
    return Conversation.objects.select_related("route", "customer", "assigned_agent").get(pk=conversation_pk)


def _outcome(conversation: Conversation, message: Message | None, *, created: bool = True) -> Outcome:
    header = conversation_payload(conversation)
    return Outcome(
        conversation=conversation,
        status={"type": "status", "status": header["status"], "agent": header["agent"]},
        message=message_payload(message) if message is not None else None,
        created=created,
        stored=message,
    )


def conversation_find(public_id: uuid.UUID) -> Conversation | None:
    return (
        Conversation.objects.select_related("route", "customer", "assigned_agent").filter(public_id=public_id).first()
    )


def socket_side(conversation: Conversation, user: Any) -> str | None:
    """ "customer" for its signed-in owner, "agent" for agents and admins, None for everyone
    else (who must prove with a token that they are its visitor)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if conversation.customer_id is not None and conversation.customer_id == user.pk:
        return "customer"
    if user_has_role(user, [Role.AGENT]) and conversation_can_view(conversation, user=user, token_ok=False):
        return "agent"
    return None


def conversation_by_token(public_id: uuid.UUID, token: Any) -> Conversation:
    """Raises ``ConversationTokenError`` or ``Conversation.DoesNotExist`` (see the service)."""
    return conversation_for_token(public_id, token if isinstance(token, str) else None)


def history(conversation_pk: int) -> dict[str, Any]:
    conversation = _load(conversation_pk)
    latest = list(
        Message.objects.filter(conversation=conversation)
        .select_related("author")
        .order_by("-created_at", "-id")[:HISTORY_MAX]
    )
    return {
        "type": "history",
        "conversation": conversation_payload(conversation),
        "messages": [message_payload(m) for m in reversed(latest)],
    }


def customer_message_receive(conversation_pk: int, text: str, client_id: str | None, *, busy: bool) -> Outcome:
    """Stores a customer message. A ``client_id`` seen before returns the stored message
    (``created=False``) whatever the limits say, so a resend after a reconnect never fails.

    Raises:
        ReplyBusy: ``busy`` and the message is new.
        MessageRateLimited: too many messages in the last minute.
        MessageInvalid, ConversationStateError: from ``customer_message_add``.
    """
    conversation = _load(conversation_pk)
    if client_id:
        existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
        if existing is not None:
            return _outcome(conversation, existing, created=False)
    if busy:
        raise ReplyBusy
    if conversation.status == Conversation.Status.CLOSED:
        raise ConversationStateError("This conversation is closed.")
    message_rate_check(conversation.pk)
    message, created = customer_message_add(conversation, text, client_id=client_id)
    return _outcome(conversation, message, created=created)


def customer_handoff(conversation_pk: int) -> tuple[Outcome, bool]:
    """The customer asked for a person: (outcome, whether it just joined the queue)."""
    conversation = _load(conversation_pk)
    before = conversation.status
    conversation_handoff(conversation, Conversation.HandoffReason.ASKED)
    return _outcome(conversation, None), before != conversation.status


def customer_feedback(conversation_pk: int, message_id: Any, helpful: Any, comment: Any) -> dict[str, Any]:
    if isinstance(message_id, bool) or not isinstance(message_id, int) or not isinstance(helpful, bool):
        raise MessageInvalid('Feedback needs an integer "message_id" and a boolean "helpful".')
    if not isinstance(comment, str):
        raise MessageInvalid('"comment" must be a string.')
    message = Message.objects.filter(pk=message_id, conversation_id=conversation_pk).first()
    if message is None:  # another conversation's message reads as missing: ids cannot be probed
        raise MessageInvalid("There is no such message in this conversation.")
    feedback = feedback_set(message, helpful, comment)
    return {"type": "feedback", "message_id": message.pk, "helpful": feedback.helpful}


def customer_rating(conversation_pk: int, rating: Any, comment: Any) -> Outcome:
    if not isinstance(comment, str):
        raise MessageInvalid('"comment" must be a string.')
    conversation = _load(conversation_pk)
    closed = rating_set(conversation, rating, comment)
    return _outcome(conversation, closed)


def agent_take_over(conversation_pk: int, agent: Any) -> Outcome:
    conversation = _load(conversation_pk)
    message = conversation_take_over(conversation, agent)
    return _outcome(conversation, message, created=message is not None)


def agent_hand_back(conversation_pk: int, agent: Any) -> Outcome:
    conversation = _load(conversation_pk)
    return _outcome(conversation, conversation_hand_back(conversation, agent))


def agent_close(conversation_pk: int, agent: Any) -> Outcome:
    conversation = _load(conversation_pk)
    return _outcome(conversation, conversation_close(conversation, by=agent))


def agent_message(conversation_pk: int, agent: Any, text: str, generator: Any) -> Outcome:
    conversation = _load(conversation_pk)
    chosen = generator if isinstance(generator, str) and generator else Message.Generator.AGENT
    return _outcome(conversation, agent_message_add(conversation, agent, text, generator=chosen))


def message_by_id(message_id: int) -> dict[str, Any] | None:
    message = Message.objects.select_related("author").filter(pk=message_id).first()
    return message_payload(message) if message is not None else None
