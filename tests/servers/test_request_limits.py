"""Size limits on a real uvicorn started as run_suite starts it: bodies refused from their headers,
WebSocket frames refused by the server before the consumer's own check."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from tests.servers.conftest import (
    get_json,
    post_json,
    run_async,
    ws_ticket,
)

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]

FRAME_TIMEOUT = 15  # seconds
MIB = 1024 * 1024


@pytest.fixture
def server(embedded_uvicorn):
    return embedded_uvicorn


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Reads until the server closes the connection; a server waiting for the body times out here."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_a_60_mib_post_is_refused_from_its_headers_alone(server):
    request = (
        b"POST /accounts/login/ HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n" + f"Content-Length: {60 * MIB}\r\n\r\n".encode()
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=FRAME_TIMEOUT) as sock:
        sock.sendall(request)  # the headers only: not one byte of the body is sent

        status, headers, body = _read_response(sock)

    assert status == 413
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["details"] == {"limit_bytes": MIB}
    assert get_json(server.url + "/healthz")[0] == 200  # and the server carries on


async def _recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))


def test_a_1_mib_websocket_frame_is_refused_by_the_server(server):
    from django.conf import settings

    status, body = post_json(server.url + "/api/auth/token/", {"username": "analyst", "password": "trellis-demo"})
    assert status == 200, body
    # A ticket opens one socket: one for each of the two connections below.
    first, second = (
        f"ws://127.0.0.1:{server.port}/ws/ping/?ticket={ws_ticket(server.url, body['token'])}" for _ in range(2)
    )
    under_the_limit = "x" * (settings.WEBSOCKET_MAX_FRAME_BYTES - 1024)

    async def scenario():
        async with connect(first, origin=server.url, open_timeout=FRAME_TIMEOUT, max_size=None) as ws:
            assert (await _recv(ws))["type"] == "hello"
            await ws.send(under_the_limit)  # reaches the consumer, which answers and stays open
            assert (await _recv(ws))["code"] == "invalid_json"

            await ws.send("x" * MIB)

            with pytest.raises(ConnectionClosedError) as closed:
                await _recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big

        async with connect(second, origin=server.url, open_timeout=FRAME_TIMEOUT) as ws:  # the next connection
            assert (await _recv(ws))["type"] == "hello"
            await ws.send(json.dumps({"type": "ping"}))
            assert (await _recv(ws))["type"] == "pong"

    run_async(scenario)
