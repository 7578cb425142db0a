"""The assistant's replies as they run in this ASGI process: one asyncio task per reply,
apart from every socket's receive loop, relaying the pipeline's events to the conversation's
group as frames.

- One reply per conversation at a time: ``reply_lock`` is an atomic ``cache.add`` (Redis when
  configured, so across servers) that expires after ``TRELLIS_CHAT_REPLY_LOCK_S`` if its
  process died; the run releases it as soon as the reply is stored.
- ``reply_cancel`` stops this process's run (``stop``, a take-over, a hand-off); a cancelled
  pipeline saves the partial reply with ``completed=False`` and the run announces it with a
  ``message_end`` frame carrying that stored message.
- The customer's sockets are counted per conversation (``customer_joined``/``customer_left``);
  when the last one in this process closes, the run is cancelled at once: nobody reads it.
  (A customer tab on another server does not keep it alive: the reply is still stored,
  marked incomplete, and that tab sees it on its next history.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache

from apps.chat.models import Conversation, Message
from apps.chat.services import live
from apps.chat.services.socket_actions import message_by_id
from ml.lm_gate import BusyError

log = logging.getLogger(__name__)

STOP_WAIT_S = 2.0  # a cancelled reply stores its partial text in a few ms; never wait longer than this
_runs: dict[str, asyncio.Task[None]] = {}
_customers: Counter[str] = Counter()


def _key(public_hex: str) -> str:
    return f"chat:reply:{public_hex}"


class ReplyLock:
    """The conversation's "a reply is running" mark, released exactly once."""

    def __init__(self, public_hex: str) -> None:
        self.public_hex = public_hex
        self.held = False

    async def acquire(self) -> bool:
        self.held = bool(await cache.aadd(_key(self.public_hex), 1, timeout=settings.TRELLIS_CHAT_REPLY_LOCK_S))
        return self.held

    async def release(self) -> None:
        if self.held:
            self.held = False
            await cache.adelete(_key(self.public_hex))


def reply_running(public_hex: str) -> bool:
    task = _runs.get(public_hex)
    return task is not None and not task.done()


def reply_cancel(public_hex: str) -> bool:
    """Cancels this process's reply for the conversation; True when one was running."""
    task = _runs.get(public_hex)
    if task is None or task.done():
        return False
    task.cancel()
    return True


async def reply_stop(public_hex: str) -> bool:
    """``reply_cancel``, then waits (at most ``STOP_WAIT_S``) until the partial reply is stored
    and announced, so that what the caller sends next (a take-over's "You are now talking
    to ...") comes after it on every screen. True when a reply was running here."""
    task = _runs.get(public_hex)
    if not reply_cancel(public_hex) or task is None:
        return False
    await asyncio.wait([task], timeout=STOP_WAIT_S)
    return True


def customer_joined(public_hex: str) -> None:
    _customers[public_hex] += 1


def customer_left(public_hex: str) -> None:
    _customers[public_hex] -= 1
    if _customers[public_hex] <= 0:
        del _customers[public_hex]
        reply_cancel(public_hex)


def reply_start(conversation: Conversation, message: Message, lock: ReplyLock) -> asyncio.Task[None]:
    """Runs the pipeline for ``message`` in its own task; ``lock`` (held) passes to it."""
    public_hex = conversation.public_id.hex
    task = asyncio.ensure_future(_run(conversation, message, lock))
    _runs[public_hex] = task

    def finished(done: asyncio.Task[None]) -> None:
        if _runs.get(public_hex) is done:
            del _runs[public_hex]
        if lock.held:  # cancelled before it started: its own finally never ran
            with contextlib.suppress(RuntimeError):  # the loop is closing
                asyncio.get_running_loop().create_task(lock.release())

    task.add_done_callback(finished)
    return task


async def _run(conversation: Conversation, message: Message, lock: ReplyLock) -> None:
    from apps.chat.services import reply  # the pipeline loads its models' code on first use

    public_id = conversation.public_id
    started: int | None = None
    ended = False

    async def send(frame: dict[str, Any]) -> None:
        await live.frame_broadcast(public_id, frame)

    try:
        async with contextlib.aclosing(reply.reply_events(conversation, message)) as events:
            async for event in events:
                if isinstance(event, reply.ReplyStarted):
                    started = event.message_id
                    await send({"type": "message_start", "message_id": started, "role": Message.Role.ASSISTANT})
                elif isinstance(event, reply.ReplyToken):
                    await send({"type": "token", "message_id": event.message_id, "text": event.text})
                elif isinstance(event, reply.ReplyFinished):
                    ended = True
                    await lock.release()
                    # replaced: the stored text is not what streamed (grounding fallback): show it
                    payload = await _payload(event.message)
                    await send({"type": "message_end", "message": payload, "replaced": bool(event.replaced)})
                elif isinstance(event, reply.HandedOff):
                    ended = True
                    await lock.release()
                    await _handed_off(event, started, send)
    except asyncio.CancelledError:
        await lock.release()
        if started is not None and not ended:
            await _end_partial(started, send)
        raise
    except BusyError as exc:
        retry_after = max(1, min(30, 2 * (exc.waiting + 1)))  # as the /v1 API's Retry-After
        await send({"type": "error", "code": "busy", "message": str(exc), "retry_after": retry_after})
    except Exception:
        log.exception("reply for conversation %s failed", public_id)
        await send(
            {"type": "error", "code": "reply_failed", "message": "The assistant could not answer; please try again."}
        )
        if started is not None and not ended:
            await _end_partial(started, send)
    finally:
        await lock.release()


@database_sync_to_async
def _payload(message: Message) -> dict[str, Any]:
    return message_by_id(message.pk) or {"id": message.pk}


async def _end_partial(message_id: int, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """The stopped reply as stored (``completed=False``), so every screen closes its bubble."""
    stored = await database_sync_to_async(message_by_id)(message_id)
    await send({"type": "message_end", "message": stored or {"id": message_id, "completed": False, "text": ""}})


async def _handed_off(event: Any, started: int | None, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    payload = await _payload(event.message)
    if started is not None and payload.get("id") == started:
        await send({"type": "message_end", "message": payload})
    else:
        await send({"type": "message", "message": payload})
    await send({"type": "handoff", "reason": event.reason, "status": Conversation.Status.WAITING})
    await live.queue_changed_async()
