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
    child_env,
    free_port,
    get_json,
    post_json,
    run_async,
    uvicorn_argv,
    wait_for_healthz,
    ws_ticket,
)

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]

FRAME_TIMEOUT = 15  # seconds
LOG_TIMEOUT = 15  # seconds for a line to reach the log file after the event


def _wait_for_line(server, text: str) -> str:
    deadline = time.monotonic() + LOG_TIMEOUT
    while time.monotonic() < deadline:
        log = server.log.read_text(errors="replace")
        if text in log:
            return log
        time.sleep(0.2)
    pytest.fail(f"{text!r} never reached the log:\n{server.log_tail()}")


def test_tickets_and_queries_stay_out_of_the_server_log(start_process, embedded_var):
    port = free_port()
    server = start_process("uvicorn", uvicorn_argv(port), child_env(embedded_var), port=port)  # access log on
    wait_for_healthz(server)
    status, login = post_json(server.url + "/api/auth/token/", {"username": "analyst", "password": "trellis-demo"})
    assert status == 200, login
    ticket = ws_ticket(server.url, login["token"])
    get_json(server.url + "/healthz?probe=query-secret-42")

    async def scenario():
        uri = f"ws://127.0.0.1:{port}/ws/ping/?ticket={ticket}"
        async with connect(uri, origin=server.url, open_timeout=FRAME_TIMEOUT) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))["type"] == "hello"

    run_async(scenario)

    log = _wait_for_line(server, '"WebSocket /ws/ping/?[redacted]" [accepted]')
    _wait_for_line(server, '"GET /healthz?[redacted] HTTP/1.1" 200')
    assert ticket not in log
    assert ticket.split(":")[0] not in log  # not even the payload part
    assert "query-secret-42" not in log
    assert login["token"] not in log
