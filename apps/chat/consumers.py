"""The chat sockets: ``ws/chat/<public_id>/`` (a conversation's customer and agents) and
``ws/chat/queue/`` (the agents' queue). The frame protocol is README "Chat socket protocol".

Who may connect to a conversation: its visitor, whose first frame is ``{"type": "hello",
"token": ...}`` within ``TRELLIS_CHAT_HELLO_TIMEOUT_S`` (else 4401; a forged or expired token
4401, another conversation's 4403); its signed-in customer and agents/admins without a token.
An unknown conversation is 4404. Limits: ``TRELLIS_CHAT_*`` in settings (frame flood -> 4429,
visitor sockets per address -> refused with 4429, messages per minute -> ``rate_limited``).

The reply to a customer message runs in its own task (``services.reply_runs``) that sends
frames to the conversation's group, so every tab and every agent watching sees it stream;
this socket's receive loop stays free for ``stop``, typing and the agent's take-over.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from apps.accounts.roles import Role
from apps.chat.models import Conversation
from apps.chat.services import live, reply_runs, socket_actions
from apps.chat.services.conversations import CLIENT_ID_MAX, ConversationError, ConversationTokenError
from apps.core.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, JsonConsumer

CLOSE_NOT_FOUND = 4404
CLOSE_FLOOD = 4429
AGENT_FRAMES = frozenset({"take_over", "hand_back", "close", "draft"})
CUSTOMER_FRAMES = frozenset({"feedback", "rating", "handoff"})
LEFT_ASSISTANT = frozenset({Conversation.Status.WAITING, Conversation.Status.AGENT, Conversation.Status.CLOSED})


def _client_address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class ChatConsumer(JsonConsumer):
    allow_anonymous = True
    side: str | None = None  # "customer" | "agent" once authorised
    conversation: Conversation | None = None
    _address: str | None = None
    _hello_timer: asyncio.Task[None] | None = None
    _draft: asyncio.Task[None] | None = None
    _closing = False

    # -- connect / disconnect ---------------------------------------------------------------
    async def connect(self) -> None:
        self.public_id = self.scope["url_route"]["kwargs"]["public_id"]
        self.public_hex = self.public_id.hex
        self.budget = live.FrameBudget(settings.TRELLIS_CHAT_FRAMES_PER_S, settings.TRELLIS_CHAT_FRAME_BURST)
        self.typing = live.Every(settings.TRELLIS_CHAT_TYPING_INTERVAL_S)
        conversation = await database_sync_to_async(socket_actions.conversation_find)(self.public_id)
        if conversation is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        user = self.scope.get("user")
        if not (user and user.is_authenticated):
            address = _client_address(self.scope)
            if not await database_sync_to_async(live.ip_socket_acquire)(address):
                await self.close(code=CLOSE_FLOOD)
                return
            self._address = address
        side = await database_sync_to_async(socket_actions.socket_side)(conversation, user)
        await self.accept()
        if side is not None:
            await self._authorised(conversation, side)
        else:
            self._hello_timer = asyncio.ensure_future(self._hello_deadline())

    async def _hello_deadline(self) -> None:
        await asyncio.sleep(settings.TRELLIS_CHAT_HELLO_TIMEOUT_S)
        if self.side is None:
            await self._close(CLOSE_UNAUTHENTICATED, "No hello with a conversation token.")

    async def _authorised(self, conversation: Conversation, side: str) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        joined_before = self.side is not None
        if side == "customer" and self.side != "customer":
            reply_runs.customer_joined(self.public_hex)
        self.side, self.conversation = side, conversation
        if not joined_before:  # join before reading history, so nothing between the two is lost
            group = live.conversation_group(self.public_id)
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups = [*self.groups, group]
        await self.send_json(await database_sync_to_async(socket_actions.history)(conversation.pk))

    async def disconnect(self, code: int) -> None:
        for task in (self._hello_timer, self._draft):
            if task is not None:
                task.cancel()
        if self.side == "customer":
            reply_runs.customer_left(self.public_hex)
            self.side = None
        if self._address is not None:
            await database_sync_to_async(live.ip_socket_release)(self._address)
            self._address = None

    async def _close(self, code: int, reason: str) -> None:
        self._closing = True
        await self.close(code=code, reason=reason)

    # -- frames from the client -------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if self._closing:
            return
        if not self.budget.take():
            rate = settings.TRELLIS_CHAT_FRAMES_PER_S
            await self._close(CLOSE_FLOOD, f"Too many frames (more than {rate:g} a second).")
            return
        await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)

    async def receive_message(self, content: dict[str, Any]) -> None:
        kind = content["type"]
        if kind == "hello":
            await self._hello(content)
            return
        if kind == "ping":  # keep-alive (static/core/socket.js ``ping``), before hello too
            await self.send_json({"type": "pong"})
            return
        if self.side is None:
            await self.send_error("hello_required", 'Send {"type": "hello", "token": ...} first.')
            return
        handler = getattr(self, f"_frame_{kind}", None) if kind.isidentifier() else None
        if handler is None:
            await self.send_error("unknown_type", f"Unknown frame type {kind!r}.")
        elif kind in AGENT_FRAMES and self.side != "agent":
            await self.send_error("forbidden", "Only agents can do this.")
        elif kind in CUSTOMER_FRAMES and self.side != "customer":
            await self.send_error("forbidden", "Only the customer can do this.")
        else:
            try:
                await handler(content)
            except ConversationError as exc:
                await self.send_error(exc.code, str(exc))

    async def _hello(self, content: dict[str, Any]) -> None:
        try:
            conversation = await database_sync_to_async(socket_actions.conversation_by_token)(
                self.public_id, content.get("token")
            )
        except ConversationTokenError as exc:
            if self.side is None:
                code = CLOSE_FORBIDDEN if exc.reason == "other_conversation" else CLOSE_UNAUTHENTICATED
                await self._close(code, str(exc))
            else:
                await self.send_error(exc.code, str(exc))
            return
        except Conversation.DoesNotExist:
            await self._close(CLOSE_NOT_FOUND, "This conversation no longer exists.")
            return
        await self._authorised(conversation, "customer")

    async def _frame_message(self, content: dict[str, Any]) -> None:
        text, client_id = content.get("text"), content.get("client_id")
        if not isinstance(text, str):
            await self.send_error("invalid_message", 'A message needs a string "text".')
            return
        if not text.strip():
            await self.send_error("empty", "The message is empty.")
            return
        if len(text.strip()) > settings.TRELLIS_CHAT_MAX_MESSAGE_CHARS:
            limit = settings.TRELLIS_CHAT_MAX_MESSAGE_CHARS
            await self.send_error("too_long", f"Messages are limited to {limit} characters.")
            return
        if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= CLIENT_ID_MAX):
            await self.send_error(
                "invalid_message", f'"client_id" must be a string of 1 to {CLIENT_ID_MAX} characters.'
            )
            return
        if self.side == "agent":
            await self._agent_message(text, content.get("generator"))
        else:
            await self._customer_message(text, client_id)

    async def _customer_message(self, text: str, client_id: str | None) -> None:
        lock = reply_runs.ReplyLock(self.public_hex)
        busy = not await lock.acquire()
        try:
            outcome = await database_sync_to_async(socket_actions.customer_message_receive)(
                self.conversation.pk, text, client_id, busy=busy
            )
        except socket_actions.ReplyBusy:
            await self.send_error("busy_reply", "The assistant is still answering; send this when it has finished.")
            return
        except live.MessageRateLimited as exc:
            await lock.release()
            await self.send_json(
                {"type": "error", "code": "rate_limited", "message": str(exc), "retry_after": exc.retry_after}
            )
            return
        except BaseException:
            await lock.release()
            raise
        if not outcome.created:  # a resend: this socket gets the stored message again, no second reply
            await lock.release()
            await self.send_json({"type": "message", "message": outcome.message})
            return
        await live.frame_broadcast(self.public_id, {"type": "message", "message": outcome.message})
        if outcome.conversation.status == Conversation.Status.BOT:
            reply_runs.reply_start(outcome.conversation, outcome.stored, lock)
        else:
            await lock.release()

    async def _agent_message(self, text: str, generator: Any) -> None:
        outcome = await database_sync_to_async(socket_actions.agent_message)(
            self.conversation.pk, self.scope["user"], text, generator
        )
        await live.frame_broadcast(self.public_id, {"type": "message", "message": outcome.message})

    async def _frame_typing(self, content: dict[str, Any]) -> None:
        if self.typing.ready():  # extra typing frames are dropped, not errors
            await live.frame_broadcast(self.public_id, {"type": "typing", "role": self.side}, exclude=self.channel_name)

    async def _frame_stop(self, content: dict[str, Any]) -> None:
        await self._stop_reply()

    async def _stop_reply(self) -> None:
        if not await reply_runs.reply_stop(self.public_hex):  # not here: maybe on another server
            await live.generation_cancel_broadcast(self.public_id)

    async def _frame_handoff(self, content: dict[str, Any]) -> None:
        await self._stop_reply()
        outcome, joined = await database_sync_to_async(socket_actions.customer_handoff)(self.conversation.pk)
        frame = {
            "type": "handoff",
            "reason": outcome.conversation.handoff_reason,
            "status": outcome.conversation.status,
        }
        if joined:
            await live.frame_broadcast(self.public_id, frame)
            await live.queue_changed_async()
        else:
            await self.send_json(frame)

    async def _frame_feedback(self, content: dict[str, Any]) -> None:
        ack = await database_sync_to_async(socket_actions.customer_feedback)(
            self.conversation.pk, content.get("message_id"), content.get("helpful"), content.get("comment", "")
        )
        await self.send_json(ack)

    async def _frame_rating(self, content: dict[str, Any]) -> None:
        outcome = await database_sync_to_async(socket_actions.customer_rating)(
            self.conversation.pk, content.get("rating"), content.get("comment", "")
        )
        await self.send_json({"type": "rating", "rating": outcome.conversation.rating})
        if outcome.message is not None:  # it closed the conversation
            await self._stop_reply()
            await self._announce(outcome)

    async def _frame_take_over(self, content: dict[str, Any]) -> None:
        await self._stop_reply()
        outcome = await database_sync_to_async(socket_actions.agent_take_over)(self.conversation.pk, self.scope["user"])
        if outcome.created:
            await self._announce(outcome)
        else:
            await self.send_json(outcome.status)

    async def _frame_hand_back(self, content: dict[str, Any]) -> None:
        outcome = await database_sync_to_async(socket_actions.agent_hand_back)(self.conversation.pk, self.scope["user"])
        await self._announce(outcome)

    async def _frame_close(self, content: dict[str, Any]) -> None:
        await self._stop_reply()
        outcome = await database_sync_to_async(socket_actions.agent_close)(self.conversation.pk, self.scope["user"])
        await self._announce(outcome)

    async def _frame_draft(self, content: dict[str, Any]) -> None:
        if self._draft is not None and not self._draft.done():
            await self.send_error("busy_draft", "A draft is already being written.")
            return
        self._draft = asyncio.ensure_future(self._write_draft())

    async def _write_draft(self) -> None:
        from apps.chat.services import assist  # the pipeline loads its models' code on first use

        conversation = await database_sync_to_async(socket_actions.conversation_find)(self.public_id)
        try:
            draft = await assist.draft_reply(conversation)
        except reply_runs.BusyError as exc:
            await self.send_error("busy", str(exc))
            return
        except assist.DraftUnavailable as exc:
            await self.send_error("model_unavailable", str(exc))
            return
        await self.send_json({"type": "draft", "text": draft.text, "sources": list(draft.sources)})

    async def _announce(self, outcome: socket_actions.Outcome) -> None:
        """A state change: its SYSTEM message and the new status to everyone, then the queue."""
        if outcome.message is not None:
            await live.frame_broadcast(self.public_id, {"type": "message", "message": outcome.message})
        await live.frame_broadcast(self.public_id, outcome.status)
        await live.queue_changed_async()

    # -- group events -------------------------------------------------------------------------
    async def chat_frame(self, event: dict[str, Any]) -> None:
        """``chat.frame`` (``services.live``): relay to this socket."""
        frame = event["frame"]
        if frame.get("type") == "status" and frame.get("status") in LEFT_ASSISTANT:
            reply_runs.reply_cancel(self.public_hex)  # a take-over from anywhere stops the assistant
        if event.get("exclude") != self.channel_name:
            await self.send_json(frame)

    async def chat_cancel(self, event: dict[str, Any]) -> None:
        """``chat.cancel``: stop the reply if it runs in this process."""
        reply_runs.reply_cancel(self.public_hex)


class ChatQueueConsumer(JsonConsumer):
    """``ws/chat/queue/``: the agents' queue, sent on connect and after every change."""

    roles = (Role.AGENT,)

    async def on_connected(self) -> None:
        await self.channel_layer.group_add(live.QUEUE_GROUP, self.channel_name)
        self.groups = [*self.groups, live.QUEUE_GROUP]
        await self._send_queue()

    async def _send_queue(self) -> None:
        entries = await database_sync_to_async(live.queue_entries)()
        await self.send_json({"type": "queue", "conversations": entries})

    async def receive_message(self, content: dict[str, Any]) -> None:
        if content["type"] == "refresh":
            await self._send_queue()
        elif content["type"] == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_error("unknown_type", f"Unknown frame type {content['type']!r}; expected refresh or ping.")

    async def chat_queue_changed(self, event: dict[str, Any]) -> None:
        """``chat.queue_changed`` (``live.queue_changed``)."""
        await self._send_queue()
