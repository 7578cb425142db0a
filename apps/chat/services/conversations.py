"""Conversations: visitor tokens, who may see what, customer and agent messages, state changes.

An anonymous visitor holds a signed token (``TimestampSigner``, salt ``TOKEN_SALT``) naming
the conversation's ``public_id`` and ``visitor_id``; nothing about it is stored server-side, so
any ASGI server can check it. Tokens older than ``TRELLIS_CHAT_TOKEN_MAX_AGE_S`` are refused.

States: ``bot`` -> (``conversation_handoff``) ``waiting`` -> (``conversation_take_over``)
``agent`` -> (``conversation_hand_back``) ``bot``; any open state -> (``conversation_close``)
``closed``. A take-over, a hand-back and a close add a SYSTEM message the customer sees; those
functions return it so that the caller (socket, REST) can broadcast it. Anything done to a
closed conversation raises ``ConversationStateError``.

All functions are synchronous; async callers wrap them in ``sync_to_async``.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.accounts.roles import Role, user_has_role
from apps.chat.models import Conversation, Feedback, Message, WidgetRoute
from apps.chat.services.redaction import redact

TOKEN_SALT = "trellis.chat.conversation"  # noqa: S105  (a signing namespace; the key is SECRET_KEY)
CLIENT_ID_MAX = 64  # Message.client_id max_length
AGENT_GENERATORS = (Message.Generator.AGENT, Message.Generator.DRAFT)
ANGRY_PRIORITY = 1  # an upset customer goes ahead of the others in the agents' queue
OPEN = (Conversation.Status.BOT, Conversation.Status.WAITING, Conversation.Status.AGENT)


class ConversationError(ValueError):
    """Base of this module's errors: ``str(exc)`` is a sentence a client may be shown."""

    code = "conversation_error"


class ConversationTokenError(ConversationError):
    """The token is forged, expired, malformed or names another conversation (``reason``)."""

    code = "token_invalid"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "missing" | "forged" | "expired" | "other_conversation"


class ConversationStateError(ConversationError):
    """The action is not possible in the conversation's state (e.g. it is closed)."""

    code = "conversation_state"


class MessageInvalid(ConversationError):
    """Empty or oversized message text, or a bad client_id."""

    code = "message_invalid"


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=TOKEN_SALT)


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConversationTokenError("That is not a conversation id.", reason="forged") from exc


def conversation_token(conversation: Conversation) -> str:
    """A new signed token for the conversation's visitor."""
    return _signer().sign(f"{conversation.public_id.hex}:{conversation.visitor_id.hex}")


def _touch(conversation: Conversation, **fields: Any) -> None:
    fields["last_activity_at"] = timezone.now()
    for name, value in fields.items():
        setattr(conversation, name, value)
    Conversation.objects.filter(pk=conversation.pk).update(**fields)


def conversation_start(
    *, route: WidgetRoute | None, customer: Any = None, origin: str = ""
) -> tuple[Conversation, str]:
    """Opens a conversation for a visitor (and a signed-in customer, when there is one).

    Raises:
        ConversationStateError: the route is switched off.
    """
    if route is not None and not route.active:
        raise ConversationStateError(f"The chat route {route.key!r} is not active.")
    owner = customer if customer is not None and getattr(customer, "is_authenticated", False) else None
    conversation = Conversation.objects.create(route=route, customer=owner, origin=(origin or "")[:200])
    return conversation, conversation_token(conversation)


def route_origin_allowed(route: WidgetRoute | None, origin: str | None, *, host: str) -> bool:
    """May a browser page at ``origin`` use ``route``? Its allowed origins, this site's own
    ``host``, or no Origin header at all (not a browser: curl, a server)."""
    if not origin:
        return True
    origin = origin.rstrip("/")
    if urlsplit(origin).netloc == host:
        return True
    return route is not None and origin in [o.rstrip("/") for o in (route.allowed_origins or [])]


def conversation_for_token(public_id: Any, token: str | None) -> Conversation:
    """The conversation ``token`` opens, which must be ``public_id``.

    Raises:
        ConversationTokenError: no token, a forged or expired one, or one of another conversation.
        Conversation.DoesNotExist: the token is genuine but its conversation was deleted.
    """
    wanted = _uuid(public_id)
    if not token or not isinstance(token, str):
        raise ConversationTokenError("A conversation token is required.", reason="missing")
    try:
        value = _signer().unsign(token, max_age=settings.TRELLIS_CHAT_TOKEN_MAX_AGE_S)
    except signing.SignatureExpired as exc:
        raise ConversationTokenError("The conversation token has expired.", reason="expired") from exc
    except signing.BadSignature as exc:
        raise ConversationTokenError("The conversation token is not valid.", reason="forged") from exc
    public_hex, _, visitor_hex = value.partition(":")
    if public_hex != wanted.hex:
        raise ConversationTokenError("The token is for another conversation.", reason="other_conversation")
    return Conversation.objects.select_related("route", "customer", "assigned_agent").get(
        public_id=wanted, visitor_id=_uuid(visitor_hex)
    )


def conversation_can_view(conversation: Conversation, *, user: Any, token_ok: bool) -> bool:
    """The visitor holding its token, the signed-in customer who owns it, agents and admins."""
    if token_ok:
        return True
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if conversation.customer_id is not None and conversation.customer_id == user.pk:
        return True
    return user_has_role(user, [Role.AGENT])


def _open(conversation: Conversation) -> None:
    if conversation.status == Conversation.Status.CLOSED:
        raise ConversationStateError("This conversation is closed.")


def _clean_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise MessageInvalid("The message is empty.")
    text = text.strip()
    limit = settings.TRELLIS_CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise MessageInvalid(f"The message is longer than {limit} characters.")
    return text


def customer_message_add(conversation: Conversation, text: str, *, client_id: str | None) -> tuple[Message, bool]:
    """Stores a customer's message, redacted; a second call with the same ``client_id`` (a
    resend after a reconnect) returns the first message and ``created=False``.

    Raises:
        MessageInvalid: empty or oversized text, or a client_id over 64 characters.
        ConversationStateError: the conversation is closed.
    """
    if client_id is not None and (not isinstance(client_id, str) or len(client_id) > CLIENT_ID_MAX):
        raise MessageInvalid(f"client_id must be a string of at most {CLIENT_ID_MAX} characters.")
    client_id = client_id or None
    if client_id:
        existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
        if existing is not None:
            return existing, False
    _open(conversation)
    redacted = redact(_clean_text(text))
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                role=Message.Role.CUSTOMER,
                text=redacted.text,
                redactions=dict(redacted.counts),
                client_id=client_id,
            )
    except IntegrityError:  # the same client_id raced in from another socket
        return Message.objects.get(conversation=conversation, client_id=client_id), False
    _touch(conversation)
    return message, True


def _system_message(conversation: Conversation, text: str, *, author: Any = None) -> Message:
    return Message.objects.create(
        conversation=conversation,
        role=Message.Role.SYSTEM,
        text=text,
        generator=Message.Generator.TEMPLATE,
        author=author if getattr(author, "is_authenticated", False) else None,
    )


def _require_agent(agent: Any) -> None:
    if not user_has_role(agent, [Role.AGENT]):
        raise ConversationStateError("Only agents can do this.")


def conversation_handoff(conversation: Conversation, reason: str) -> Conversation:
    """Puts the conversation in the agents' queue (``waiting``) for ``reason``
    (a ``Conversation.HandoffReason``). Already waiting or with an agent: unchanged.

    Raises:
        ConversationStateError: closed, or an unknown reason.
    """
    _open(conversation)
    if reason not in Conversation.HandoffReason.values:
        raise ConversationStateError(f"Unknown hand-off reason {reason!r}.")
    if conversation.status != Conversation.Status.BOT:
        return conversation
    priority = ANGRY_PRIORITY if reason == Conversation.HandoffReason.ANGRY else conversation.priority
    _touch(
        conversation,
        status=Conversation.Status.WAITING,
        handoff_reason=reason,
        handoff_at=timezone.now(),
        priority=priority,
    )
    return conversation


def agent_display_name(agent: Any) -> str:
    return (getattr(agent, "first_name", "") or "").strip() or agent.get_username()


def conversation_take_over(conversation: Conversation, agent: Any) -> Message | None:
    """The agent answers from now on (the assistant stops). Returns the SYSTEM message
    "You are now talking to <name>", or None when this agent already has it.

    Raises:
        ConversationStateError: closed, or ``agent`` is not an agent.
    """
    _open(conversation)
    _require_agent(agent)
    if conversation.status == Conversation.Status.AGENT and conversation.assigned_agent_id == agent.pk:
        return None
    _touch(
        conversation,
        status=Conversation.Status.AGENT,
        assigned_agent=agent,
        handoff_reason=conversation.handoff_reason or Conversation.HandoffReason.AGENT,
        handoff_at=conversation.handoff_at or timezone.now(),
    )
    return _system_message(conversation, f"You are now talking to {agent_display_name(agent)}", author=agent)


def conversation_hand_back(conversation: Conversation, agent: Any) -> Message:
    """The assistant answers again. ``handoff_reason`` and ``handoff_at`` stay (analytics).

    Raises:
        ConversationStateError: closed, not with an agent, or ``agent`` is not an agent.
    """
    _open(conversation)
    _require_agent(agent)
    if conversation.status != Conversation.Status.AGENT:
        raise ConversationStateError("No agent has this conversation.")
    _touch(conversation, status=Conversation.Status.BOT, assigned_agent=None)
    return _system_message(conversation, "The assistant is back", author=agent)


def conversation_close(conversation: Conversation, *, by: Any = None) -> Message:
    """Closes it (``by``: the agent or customer who did, None for the visitor).

    Raises:
        ConversationStateError: already closed.
    """
    _open(conversation)
    _touch(conversation, status=Conversation.Status.CLOSED, closed_at=timezone.now())
    return _system_message(conversation, "Conversation closed", author=by)


def agent_message_add(
    conversation: Conversation, agent: Any, text: str, *, generator: str = Message.Generator.AGENT
) -> Message:
    """An agent's reply (``generator`` "draft" when an assist draft was sent as is).

    Raises:
        MessageInvalid: empty or oversized text, or an unknown generator.
        ConversationStateError: closed, not taken over, or ``agent`` is not an agent.
    """
    _open(conversation)
    _require_agent(agent)
    if generator not in AGENT_GENERATORS:
        raise MessageInvalid(f"generator must be one of {list(AGENT_GENERATORS)}.")
    if conversation.status != Conversation.Status.AGENT:
        raise ConversationStateError("Take the conversation over before replying.")
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.AGENT, text=_clean_text(text), generator=generator, author=agent
    )
    _touch(conversation)
    return message


def feedback_set(message: Message, helpful: bool, comment: str = "") -> Feedback:
    """Thumbs on an assistant reply; a second call replaces the first.

    Raises:
        MessageInvalid: the message is not an assistant or agent reply, or the comment is too long.
    """
    if message.role not in (Message.Role.ASSISTANT, Message.Role.AGENT):
        raise MessageInvalid("Only replies can be rated.")
    if len(comment or "") > 1000:
        raise MessageInvalid("The comment is longer than 1000 characters.")
    feedback, _ = Feedback.objects.update_or_create(
        message=message, defaults={"helpful": bool(helpful), "comment": redact(comment).text if comment else ""}
    )
    return feedback


def rating_set(conversation: Conversation, rating: int, comment: str = "") -> Message | None:
    """The customer's 1-5 rating; closes the conversation when it is still open. Returns the
    "Conversation closed" SYSTEM message when it closed it, else None.

    Raises:
        MessageInvalid: rating outside 1-5 or the comment is too long.
    """
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise MessageInvalid("The rating must be a whole number from 1 to 5.")
    if len(comment or "") > 1000:
        raise MessageInvalid("The comment is longer than 1000 characters.")
    closed = conversation_close(conversation, by=conversation.customer) if conversation.status in OPEN else None
    conversation.rating = rating
    conversation.rating_comment = redact(comment).text if comment else ""
    Conversation.objects.filter(pk=conversation.pk).update(
        rating=conversation.rating, rating_comment=conversation.rating_comment
    )
    return closed


def article_url(article_id: int) -> str:
    """Where a customer can read a cited article: the public article page when the project
    has one (``chat:article``), else "" (the widget then shows the title without a link)."""
    try:
        return reverse("chat:article", args=[article_id])
    except NoReverseMatch:
        return ""


def message_payload(message: Message) -> dict[str, Any]:
    """The JSON shape of a message, the same over REST and the socket."""
    author = None
    if message.role == Message.Role.AGENT and message.author is not None:
        author = agent_display_name(message.author)
    return {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "sources": [
            {
                "article_id": source.get("article_id"),
                "title": source.get("title", ""),
                "heading": source.get("heading", ""),
                "url": article_url(source["article_id"]) if source.get("article_id") else "",
            }
            for source in (message.sources or [])
        ],
        "decision": message.decision,
        "generator": message.generator,
        "intent": message.intent,
        "confidence": message.confidence,
        "completed": message.completed,
        "created_at": message.created_at.isoformat() if message.created_at else None,
        "author": author,
    }


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    """``{public_id, status, handoff_reason, agent}``: the socket's history header."""
    agent = conversation.assigned_agent
    return {
        "public_id": str(conversation.public_id),
        "status": conversation.status,
        "handoff_reason": conversation.handoff_reason,
        "agent": agent_display_name(agent) if agent is not None else None,
    }
