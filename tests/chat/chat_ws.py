"""Helpers for the chat socket tests: conversations, sockets on ws/chat/..., frame waits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from channels.testing import WebsocketCommunicator

from tests.core.ws import ORIGIN, ticket_for

SHOP = "https://shop.example.com"
# seconds per frame: generous for 2 cores shared by several test runs (load average ~10),
# never reached when things work
TIMEOUT = 20


def redaction_warm() -> None:
    """Loads the redaction engine (spaCy + Presidio: ~1 s idle, 25 s on a loaded box) before a
    scenario, so that the first message's frame wait measures the socket, not that load."""
    from apps.chat.services.redaction import redact

    redact("warm up")


def conversation_new(*, origins: tuple[str, ...] = (SHOP,), customer: Any = None, key: str = "shop") -> tuple[Any, str]:
    """A conversation on the widget route ``key`` (created when missing) and its visitor token."""
    from apps.chat.models import WidgetRoute
    from apps.chat.services.conversations import conversation_start

    route, _ = WidgetRoute.objects.get_or_create(key=key, defaults={"name": key, "allowed_origins": list(origins)})
    return conversation_start(route=route, customer=customer, origin=origins[0] if origins else "")


def chat_socket(
    conversation: Any,
    *,
    ticket: str | None = None,
    origin: bytes | None = b"http://testserver",
    client: tuple[str, int] = ("203.0.113.7", 50000),
    path: str | None = None,
) -> WebsocketCommunicator:
    """A communicator on the conversation's socket (``path`` overrides), signed in by
    ``ticket`` (``tickets(user)``, made outside the async scenario) from address ``client``."""
    from config.asgi import application

    url = path or f"/ws/chat/{conversation.public_id}/"
    if ticket is not None:
        url += f"?ticket={ticket}"
    headers = [(b"host", b"testserver")] + ([(b"origin", origin)] if origin is not None else [])
    comm = WebsocketCommunicator(application, url, headers=headers)
    comm.scope["client"] = client
    return comm


def tickets(user: Any, count: int = 3) -> list[str]:
    """Single-use socket tickets for ``user`` (one per connection)."""
    return [ticket_for(user) for _ in range(count)]


def queue_socket(ticket: str) -> WebsocketCommunicator:
    from config.asgi import application

    return WebsocketCommunicator(application, f"/ws/chat/queue/?ticket={ticket}", headers=ORIGIN)


async def visitor_connect(conversation: Any, token: str, **kwargs: Any) -> tuple[WebsocketCommunicator, dict]:
    """Connects, says hello with ``token``; returns the socket and its history frame."""
    comm = chat_socket(conversation, **kwargs)
    connected, code = await comm.connect(timeout=TIMEOUT)
    assert connected, code
    await comm.send_json_to({"type": "hello", "token": token})
    history = await comm.receive_json_from(timeout=TIMEOUT)
    assert history["type"] == "history", history
    return comm, history


async def user_connect(conversation: Any, ticket: str) -> tuple[WebsocketCommunicator, dict]:
    comm = chat_socket(conversation, ticket=ticket)
    connected, code = await comm.connect(timeout=TIMEOUT)
    assert connected, code
    history = await comm.receive_json_from(timeout=TIMEOUT)
    assert history["type"] == "history", history
    return comm, history


async def until_type(comm: WebsocketCommunicator, kind: str) -> list[dict[str, Any]]:
    """Frames up to and including the first of type ``kind``."""
    return await until(comm, lambda frame: frame.get("type") == kind)


async def until(comm: WebsocketCommunicator, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Frames up to and including the first that ``match``es."""
    seen = []
    while True:
        frame = await comm.receive_json_from(timeout=TIMEOUT)
        seen.append(frame)
        if match(frame):
            return seen


async def closed_with(comm: WebsocketCommunicator) -> int:
    """Waits for the server to close the (accepted) socket; returns the close code."""
    while True:
        output = await comm.receive_output(timeout=TIMEOUT)
        if output["type"] == "websocket.close":
            return output.get("code", 1000)
