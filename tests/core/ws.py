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


def ticket_for(user: Any, token: Any = None) -> str:
    """A single-use socket ticket for ``user`` (bound to API token ``token`` when given), as
    ``POST /api/auth/ws-ticket/`` would issue it."""
    from apps.accounts.services import ws_ticket_create

    return ws_ticket_create(user, token=token)


def socket(ticket: str | None = None, headers: list[tuple[bytes, bytes]] | None = None, path: str = "/ws/ping/"):
    """A communicator on ``path``, signed in by ``?ticket=`` when given (or by a cookie in ``headers``)."""
    from config.asgi import application

    return WebsocketCommunicator(
        application, path + (f"?ticket={ticket}" if ticket else ""), headers=ORIGIN if headers is None else headers
    )


async def receive_until(comm: Any, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Frames up to and including the first that ``match``es (other sockets may share the group)."""
    seen = []
    while True:
        frame = await comm.receive_json_from(timeout=TIMEOUT)
        seen.append(frame)
        if match(frame):
            return seen
