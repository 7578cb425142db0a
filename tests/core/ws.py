"""WebSocket test helpers: Channels' WebsocketCommunicator over the project's ASGI application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

TIMEOUT = 5  # seconds per frame; generous for a loaded 2-core machine, never reached when things work
ORIGIN = [(b"origin", b"http://testserver"), (b"host", b"testserver")]




def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Runs an async scenario from a sync test; the consumer's DB calls come back to this
    thread, so they see the test's (uncommitted) rows."""
    async_to_sync(scenario)()


def socket(token: str | None = None, headers: list[tuple[bytes, bytes]] | None = None, path: str = "/ws/ping/"):
    from config.asgi import application

    return WebsocketCommunicator(
        application, path + (f"?token={token}" if token else ""), headers=ORIGIN if headers is None else headers
    )


async def receive_until(comm: Any, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Frames up to and including the first that ``match``es (other sockets may share the group)."""
    seen = []
    while True:
        frame = await comm.receive_json_from(timeout=TIMEOUT)
        seen.append(frame)
        if match(frame):
            return seen
