"""A real uvicorn never writes a socket ticket (or any query string) to its log.

uvicorn's own ``uvicorn.error`` logger prints ``"WebSocket /ws/ping/?..." [accepted]`` for every
socket, access log or not; the query is redacted by the filter settings.LOGGING attaches."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect

from tests.servers.conftest import (
    get_json,
    post_json,
    run_async,
    ws_ticket,
)

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]

FRAME_TIMEOUT = 15  # seconds
LOG_TIMEOUT = 15  # seconds for a line to reach the log file after the event


def _wait_for_line(server, text: str, since: int = 0) -> str:
    """The log from byte ``since`` on, once ``text`` is in it (the server is shared: earlier
    tests' lines come before ``since``)."""
    deadline = time.monotonic() + LOG_TIMEOUT
    while time.monotonic() < deadline:
        log = server.log.read_bytes()[since:].decode(errors="replace")
        if text in log:
            return log
        time.sleep(0.2)
    pytest.fail(f"{text!r} never reached the log:\n{server.log_tail()}")


def test_tickets_and_queries_stay_out_of_the_server_log(embedded_uvicorn):
    server, port = embedded_uvicorn, embedded_uvicorn.port  # access log on
    since = server.log.stat().st_size
    status, login = post_json(server.url + "/api/auth/token/", {"username": "analyst", "password": "trellis-demo"})
    assert status == 200, login
    ticket = ws_ticket(server.url, login["token"])
    get_json(server.url + "/healthz?probe=query-secret-42")

    async def scenario():
        uri = f"ws://127.0.0.1:{port}/ws/ping/?ticket={ticket}"
        async with connect(uri, origin=server.url, open_timeout=FRAME_TIMEOUT) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))["type"] == "hello"

    run_async(scenario)

    _wait_for_line(server, '"WebSocket /ws/ping/?[redacted]" [accepted]', since)
    log = _wait_for_line(server, '"GET /healthz?[redacted] HTTP/1.1" 200', since)
    assert ticket not in log
    assert ticket.split(":")[0] not in log  # not even the payload part
    assert "query-secret-42" not in log
    assert login["token"] not in log
