"""WebSocket test helpers: Channels' WebsocketCommunicator over the project's ASGI application."""

from __future__ import annotations

import sys
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync

TIMEOUT = 5  # seconds per frame; generous for a loaded 2-core machine, never reached when things work
ORIGIN = [(b"origin", b"http://testserver"), (b"host", b"testserver")]


def _websocket_communicator() -> type:
    try:
        from channels.testing import WebsocketCommunicator
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("daphne"):
            raise
        # channels/testing/__init__.py imports daphne for ChannelsLiveServerTestCase alone; without
        # daphne installed, load the package's modules without that __init__.
        import channels

        package = types.ModuleType("channels.testing")
        package.__path__ = [str(Path(channels.__file__).parent / "testing")]
        sys.modules["channels.testing"] = package
        from channels.testing.websocket import WebsocketCommunicator
    return WebsocketCommunicator


WebsocketCommunicator = _websocket_communicator()


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
