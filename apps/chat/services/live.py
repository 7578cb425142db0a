"""What the chat sockets share: channel-layer groups, broadcasts, the agents' queue, limits.

Groups: ``chat.conv.<public_id hex>`` holds every socket of one conversation (the customer's
tabs and the agents watching it); ``chat.queue`` holds the agents' queue sockets. A frame
for a conversation travels as the event ``{"type": "chat.frame", "frame": {...}}`` (handled
by ``ChatConsumer.chat_frame``), so any ASGI server sharing the channel layer relays it.

A ``status`` frame saying the conversation left the assistant (``waiting``, ``agent``,
``closed``) also stops a reply that is being generated for it, wherever it runs, so a REST
take-over stops the AI as the socket's does.

``queue_changed()`` is the one call a state change makes so that every agent's queue socket
re-reads the queue; it works from sync code (services, tasks, REST views) and
``queue_changed_async()`` from async code.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from apps.chat.models import Conversation, Message
from apps.chat.services.conversations import agent_display_name

QUEUE_GROUP = "chat.queue"
QUEUE_STATUSES = (Conversation.Status.WAITING, Conversation.Status.AGENT)
QUEUE_MAX = 200  # conversations per queue frame: more than a team can work at once
PREVIEW_CHARS = 120
IP_KEY_TTL_S = 6 * 3600  # an address's socket count is forgotten this long after its last connect


def conversation_group(public_id: uuid.UUID | str) -> str:
    return f"chat.conv.{uuid.UUID(str(public_id)).hex}"


def conversation_broadcast(conversation: Conversation | uuid.UUID | str, frame: dict[str, Any]) -> None:
    """``frame_broadcast`` for sync code (services, tasks, REST views)."""
    public_id = conversation.public_id if isinstance(conversation, Conversation) else conversation
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(conversation_group(public_id), {"type": "chat.frame", "frame": frame})


async def frame_broadcast(public_id: uuid.UUID | str, frame: dict[str, Any], *, exclude: str = "") -> None:
    """Sends ``frame`` to every socket of the conversation (but the channel ``exclude``)."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(
            conversation_group(public_id), {"type": "chat.frame", "frame": frame, "exclude": exclude}
        )


async def generation_cancel_broadcast(public_id: uuid.UUID | str) -> None:
    """Asks whichever process runs this conversation's reply to stop it (``chat.cancel``)."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(conversation_group(public_id), {"type": "chat.cancel"})


def queue_changed() -> None:
    """A conversation entered or left the queue, or changed status: agents re-read the queue."""
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(QUEUE_GROUP, {"type": "chat.queue_changed"})


async def queue_changed_async() -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(QUEUE_GROUP, {"type": "chat.queue_changed"})


def queue_entries() -> list[dict[str, Any]]:
    """The agents' queue: conversations waiting for a person (highest priority, longest wait
    first), then those an agent has, each with its last message's first words."""
    last = Message.objects.filter(conversation=OuterRef("pk")).order_by("-created_at", "-id")
    rows = (
        Conversation.objects.filter(status__in=QUEUE_STATUSES)
        .select_related("assigned_agent", "route")
        .annotate(last_text=Subquery(last.values("text")[:1]), last_role=Subquery(last.values("role")[:1]))
        .order_by("status", "-priority", "handoff_at", "id")[:QUEUE_MAX]
    )
    now = timezone.now()
    entries = []
    for conv in rows:  # "agent" sorts before "waiting": put the waiting ones first
        since = conv.handoff_at or conv.created_at
        entries.append(
            {
                "public_id": str(conv.public_id),
                "status": conv.status,
                "handoff_reason": conv.handoff_reason,
                "priority": conv.priority,
                "waiting_s": max(0, int((now - since).total_seconds())),
                "last_message": {"role": conv.last_role or "", "text": (conv.last_text or "")[:PREVIEW_CHARS]},
                "agent": agent_display_name(conv.assigned_agent) if conv.assigned_agent else None,
                "route": conv.route.key if conv.route else "",
            }
        )
    entries.sort(key=lambda e: e["status"] != Conversation.Status.WAITING)  # stable: keeps the order within
    return entries


# --- Limits ----------------------------------------------------------------------------


class MessageRateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many messages; try again in {retry_after} s.")
        self.retry_after = retry_after


def message_rate_check(conversation_id: int) -> None:
    """Raises ``MessageRateLimited`` when the conversation's customer already sent
    ``TRELLIS_CHAT_MESSAGES_PER_MINUTE`` messages in the last 60 s (all its sockets, read from
    the database, so every server counts the same)."""
    limit = settings.TRELLIS_CHAT_MESSAGES_PER_MINUTE
    now = timezone.now()
    recent = list(
        Message.objects.filter(
            conversation_id=conversation_id, role=Message.Role.CUSTOMER, created_at__gte=now - timedelta(seconds=60)
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(recent) >= limit:
        oldest = recent[-1]  # when it turns 60 s old, one more message fits
        raise MessageRateLimited(max(1, int(60 - (now - oldest).total_seconds()) + 1))


def _ip_key(address: str) -> str:
    return f"chat:sockets:{address}"


def ip_socket_acquire(address: str) -> bool:
    """Counts one more visitor socket from ``address``; False (and not counted) when the
    address already has ``TRELLIS_CHAT_SOCKETS_PER_IP`` open."""
    key = _ip_key(address)
    cache.add(key, 0, timeout=IP_KEY_TTL_S)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=IP_KEY_TTL_S)
        count = 1
    cache.touch(key, IP_KEY_TTL_S)
    if count > settings.TRELLIS_CHAT_SOCKETS_PER_IP:
        ip_socket_release(address)
        return False
    return True


def ip_socket_release(address: str) -> None:
    try:
        if cache.decr(_ip_key(address)) < 0:
            cache.set(_ip_key(address), 0, timeout=IP_KEY_TTL_S)
    except ValueError:  # expired: nothing left to count down
        pass


class FrameBudget:
    """A token bucket of frames for one socket: ``take()`` is False once the client sends
    faster than ``rate`` per second for longer than ``burst`` frames allow."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Every:
    """``ready()`` is True at most once per ``interval_s`` (typing indicators)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last = float("-inf")

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.interval_s:
            return False
        self.last = now
        return True
