"""The embedded default as a user runs it: uvicorn on SQLite + in-memory layer, no servers."""

from __future__ import annotations

import asyncio
import http.client
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.servers.conftest import (
    _stop,
    child_env,
    free_port,
    get_json,
    launch,
    post_json,
    run_async,
    uvicorn_argv,
    wait_for_healthz,
    ws_ticket,
)

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]

FRAME_TIMEOUT = 15  # seconds
BODY_LIMIT = 1024  # bytes, for the chunked-body test


@pytest.fixture(scope="module")
def embedded_server(embedded_var, tmp_path_factory):
    """One server for the module: no test here changes what the next one sees."""
    port = free_port()
    env = child_env(embedded_var, TRELLIS_MAX_BODY_BYTES=str(BODY_LIMIT))
    server = launch("uvicorn", uvicorn_argv(port), env, tmp_path_factory.mktemp("smoke") / "uvicorn.log", port)
    try:
        wait_for_healthz(server)
        yield server
    finally:
        _stop(server.proc)


async def _recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))


def test_healthz_reports_the_embedded_default(embedded_server):
    assert embedded_server.health["status"] == "ok"
    assert "detail" not in json.dumps(embedded_server.health)  # anonymous: ok flags only
    _, login = post_json(embedded_server.url + "/api/auth/token/", {"username": "admin", "password": "trellis-demo"})
    status, health = get_json(embedded_server.url + "/healthz", headers={"Authorization": f"Token {login['token']}"})
    checks = health["checks"]

    assert status == 200
    assert all(check["ok"] for check in checks.values()), checks
    assert checks["database"]["detail"] == "sqlite"
    assert checks["cache"]["detail"] == "LocMemCache"
    assert checks["broker"]["detail"] == "filesystem"
    assert checks["channel_layer"]["detail"] == "InMemoryChannelLayer"


def test_token_login_then_websocket_hello_and_pong(embedded_server):
    status, body = post_json(
        embedded_server.url + "/api/auth/token/", {"username": "analyst", "password": "trellis-demo"}
    )
    assert status == 200, body
    uri = f"ws://127.0.0.1:{embedded_server.port}/ws/ping/?ticket={ws_ticket(embedded_server.url, body['token'])}"

    async def scenario():
        # AllowedHostsOriginValidator wants an Origin whose host is in ALLOWED_HOSTS (any port).
        async with connect(uri, origin=embedded_server.url, open_timeout=FRAME_TIMEOUT) as ws:
            hello = await _recv(ws)
            assert hello["type"] == "hello"
            assert hello["user"] == "analyst"
            await ws.send(json.dumps({"type": "ping"}))
            pong = await _recv(ws)
            assert pong == {"type": "pong", "server": hello["server"]}
            await ws.send("not json")
            assert (await _recv(ws))["code"] == "invalid_json"
            await ws.send(json.dumps({"type": "echo", "text": "still open"}))
            assert (await _recv(ws))["text"] == "still open"

    run_async(scenario)


@pytest.mark.parametrize("origin", [None, "http://evil.example"], ids=["no-origin", "foreign-origin"])
def test_websocket_without_an_allowed_origin_is_refused(embedded_server, origin):
    _, body = post_json(embedded_server.url + "/api/auth/token/", {"username": "analyst", "password": "trellis-demo"})
    uri = f"ws://127.0.0.1:{embedded_server.port}/ws/ping/?ticket={ws_ticket(embedded_server.url, body['token'])}"

    async def scenario():
        with pytest.raises(InvalidStatus) as refused:
            async with connect(uri, origin=origin, open_timeout=FRAME_TIMEOUT):
                pass
        assert refused.value.response.status_code == 403

    run_async(scenario)


def test_anonymous_websocket_is_refused(embedded_server):
    async def scenario():
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"ws://127.0.0.1:{embedded_server.port}/ws/ping/",
                origin=embedded_server.url,
                open_timeout=FRAME_TIMEOUT,
            ):
                pass
        assert refused.value.response.status_code == 403  # closed (4401) before accept -> handshake refused

    run_async(scenario)


def test_chunked_body_over_the_limit_is_refused(embedded_server):
    """No Content-Length: the server stops reading at the limit instead of spooling the whole body."""
    conn = http.client.HTTPConnection("127.0.0.1", embedded_server.port, timeout=FRAME_TIMEOUT)
    # 4 KiB in eight 512-byte (0x200) chunks against the fixture's 1 KiB limit, written with the
    # headers in one send: it sits in the socket buffers whole, so the server's early close never
    # meets a chunk still being written (a broken pipe on a warm server that answers at once).
    chunked = b"".join(b"200\r\n" + b"x" * 512 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    try:
        conn.request(
            "POST",
            "/api/auth/token/",
            body=chunked,
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        )
        response = conn.getresponse()
        status, body = response.status, json.loads(response.read())
    finally:
        conn.close()

    assert status == 413
    assert body["error"] == {
        "code": "payload_too_large",
        "message": f"Request body is over the limit of {BODY_LIMIT} bytes.",
        "details": {"limit_bytes": BODY_LIMIT},
    }
