"""Two ASGI servers sharing the Redis channel layer behave as one: the scale-out rule, proven."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
from websockets.asyncio.client import connect

from tests.servers.conftest import (
    child_env,
    free_port,
    get_json,
    needs_redis,
    run_async,
    shared_database_url,
    uvicorn_argv,
    wait_for_healthz,
    ws_ticket,
)

pytestmark = [
    pytest.mark.servers,
    pytest.mark.redis,
    needs_redis,
    pytest.mark.timeout(300),
    pytest.mark.django_db(transaction=True),
]

FRAME_TIMEOUT = 15  # seconds


@pytest.fixture
def two_nodes(start_process, tmp_path, tokens):
    """Servers A and B: same REDIS_URL and test database, different TRELLIS_SERVER_NAME."""
    suffix = uuid.uuid4().hex[:6]
    nodes = {}
    for label in ("a", "b"):
        port = free_port()
        env = {
            **child_env(tmp_path / f"var-{label}"),
            "REDIS_URL": os.environ["REDIS_URL"],
            "DATABASE_URL": shared_database_url(),
            "TRELLIS_SERVER_NAME": f"node-{label}-{suffix}",
        }
        nodes[label] = start_process(f"uvicorn-{label}", uvicorn_argv(port), env, port=port)
    for server in nodes.values():
        wait_for_healthz(server)
        _, health = get_json(server.url + "/healthz", headers={"Authorization": f"Token {tokens['admin']}"})
        assert health["checks"]["channel_layer"]["detail"] == "RedisChannelLayer"  # details: admins only
        assert health["checks"]["database"]["detail"] == "postgresql"
    return nodes["a"], nodes["b"], suffix


@pytest.fixture
def tokens(make_user):
    from apps.accounts.services import token_create

    return {role: token_create(make_user(role))[1] for role in ("admin", "analyst")}


async def _recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))


async def _recv_text(ws, text: str) -> dict:
    """The broadcast carrying ``text`` (others on this Redis may broadcast to the group too)."""
    while True:
        frame = await _recv(ws)
        if frame.get("text") == text:
            return frame


def test_broadcast_on_one_server_reaches_a_socket_on_the_other(two_nodes, tokens):
    from django.conf import settings

    from apps.core.services import ping_broadcast

    node_a, node_b, suffix = two_nodes
    from_a, from_outside = f"hello-from-A-{suffix}", f"from-the-test-process-{suffix}"

    # Each socket opens with a ticket from the server it connects to, paid for with a token.
    ticket_b, ticket_a = ws_ticket(node_b.url, tokens["analyst"]), ws_ticket(node_a.url, tokens["admin"])

    async def scenario():
        async with (
            connect(
                f"ws://127.0.0.1:{node_b.port}/ws/ping/?ticket={ticket_b}",
                origin=node_b.url,
                open_timeout=FRAME_TIMEOUT,
            ) as x,
            connect(
                f"ws://127.0.0.1:{node_a.port}/ws/ping/?ticket={ticket_a}",
                origin=node_a.url,
                open_timeout=FRAME_TIMEOUT,
            ) as y,
        ):
            hello_x, hello_y = await _recv(x), await _recv(y)
            assert hello_x["server"] == f"node-b-{suffix}"
            assert hello_y["server"] == f"node-a-{suffix}"

            await y.send(json.dumps({"type": "broadcast", "text": from_a}))
            assert await _recv_text(x, from_a) == {"type": "broadcast", "text": from_a, "origin": f"node-a-{suffix}"}

            # group_send from outside any consumer (a task, a service) reaches the sockets too.
            await asyncio.to_thread(ping_broadcast, from_outside)
            frame = await _recv_text(x, from_outside)
            assert frame["origin"] == settings.SERVER_NAME

    run_async(scenario)
