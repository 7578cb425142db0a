"""Locust load profile for a running Trellis suite (driven by ``bench/load/run_load.py``).

Every simulated user is one analyst working in the suite: pages (login form, dashboard,
``/models/``), API reads and a cheap write (a 4-row dataset upload), ``/healthz``, and one
WebSocket on ``ws/ping/`` held open for the whole run (idle between tasks) on which the
"busy" task makes ping/pong round trips. The mix is the same at every user count, so steps
compare like with like. A user thinks 0.5-1.5 s between tasks (about one request a second).

Locust has no WebSocket client: ``SuiteUser`` times the socket with websocket-client (plain
sockets, which gevent makes cooperative) and reports each handshake and round trip as a
request event, so they appear in the same statistics as the HTTP requests.

Configuration (environment, set by run_load.py):
    TRELLIS_LOAD_HOSTS    comma-separated base URLs; users are spread over them round-robin
    TRELLIS_LOAD_TOKEN    API token of the load user (``Authorization: Token ...``)
    TRELLIS_LOAD_SESSION  session cookie value of the same user (pages)
    TRELLIS_LOAD_WS_AUTH  "ticket" (POST /api/auth/ws-ticket/ before each connect) or "token" (?token=)
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import websocket  # websocket-client, installed with locust
from locust import FastHttpUser, between, task

HOSTS = [h.strip().rstrip("/") for h in os.environ.get("TRELLIS_LOAD_HOSTS", "http://127.0.0.1:8001").split(",")]
TOKEN = os.environ.get("TRELLIS_LOAD_TOKEN", "")
SESSION = os.environ.get("TRELLIS_LOAD_SESSION", "")
WS_AUTH = os.environ.get("TRELLIS_LOAD_WS_AUTH", "ticket")
SESSION_COOKIE = os.environ.get("TRELLIS_LOAD_SESSION_COOKIE", "sessionid")
WS_TIMEOUT_S = 10.0  # a round trip slower than this counts as a failure
PINGS_PER_BURST = 3
_host_cycle = itertools.cycle(HOSTS)


def _multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body (FastHttpUser takes raw bodies only)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: text/csv\r\n\r\n".encode() + content + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class SuiteUser(FastHttpUser):
    wait_time = between(0.5, 1.5)
    host = HOSTS[0]

    def __init__(self, environment: Any) -> None:
        self.host = next(_host_cycle)  # before the client is built: it binds to self.host
        super().__init__(environment)
        self.socket: websocket.WebSocket | None = None

    # --- helpers

    def _fire(self, kind: str, name: str, started: float, length: int = 0, exc: BaseException | None = None) -> None:
        self.environment.events.request.fire(
            request_type=kind, name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=length, exception=exc, context={},
        )

    def _api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {TOKEN}"}

    def _page_headers(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={SESSION}"}

    def _socket_url(self) -> str | None:
        base = urlsplit(self.host)
        url = f"{'wss' if base.scheme == 'https' else 'ws'}://{base.netloc}/ws/ping/"
        if WS_AUTH == "token":
            return f"{url}?token={TOKEN}"
        with self.client.post("/api/auth/ws-ticket/", headers=self._api_headers(), name="POST /api/auth/ws-ticket/",
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"ticket: {response.status_code}")
                return None
            return f"{url}?ticket={response.json()['ticket']}"

    def _connect(self) -> None:
        url = self._socket_url()
        if url is None:
            return
        started = time.perf_counter()
        try:
            sock = websocket.create_connection(url, timeout=WS_TIMEOUT_S, origin=self.host)
            hello = json.loads(sock.recv())
            if hello.get("type") != "hello":
                raise RuntimeError(f"expected hello, got {hello.get('type')!r}")
        except Exception as exc:  # every failure of the handshake is a failed request in the stats
            self._fire("WS", "connect ws/ping/", started, exc=exc)
            return
        self._fire("WS", "connect ws/ping/", started, length=len(json.dumps(hello)))
        self.socket = sock

    def on_start(self) -> None:
        self._connect()

    def on_stop(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    # --- pages

    def _page(self, path: str, name: str, headers: dict[str, str] | None = None) -> None:
        # Not following redirects: a lost session would otherwise "succeed" on the login page.
        with self.client.get(path, headers=headers, name=name, allow_redirects=False,
                             catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code} (location: {response.headers.get('location')})")

    @task(3)
    def dashboard(self) -> None:
        self._page("/", "GET / (dashboard)", self._page_headers())

    @task(2)
    def models_page(self) -> None:
        self._page("/models/", "GET /models/", self._page_headers())

    @task(1)
    def login_page(self) -> None:
        self._page("/accounts/login/", "GET /accounts/login/")

    @task(1)
    def healthz(self) -> None:
        self.client.get("/healthz", name="GET /healthz")

    # --- API

    @task(2)
    def me(self) -> None:
        self.client.get("/api/auth/me/", headers=self._api_headers(), name="GET /api/auth/me/")

    @task(2)
    def datasets(self) -> None:
        self.client.get("/api/mlops/datasets/?limit=20", headers=self._api_headers(), name="GET /api/mlops/datasets/")

    @task(1)
    def jobs(self) -> None:
        self.client.get("/api/mlops/jobs/?limit=20", headers=self._api_headers(), name="GET /api/mlops/jobs/")

    @task(1)
    def versions(self) -> None:
        self.client.get("/api/mlops/versions/?limit=20", headers=self._api_headers(), name="GET /api/mlops/versions/")

    @task(1)
    def roles(self) -> None:
        self.client.get("/api/mlops/roles/", headers=self._api_headers(), name="GET /api/mlops/roles/")

    @task(1)
    def upload(self) -> None:
        # Unique rows: the same file twice for one role is refused as a duplicate (by design).
        tag = uuid.uuid4().hex[:12]
        csv = (f"text,label\nprofits beat estimates {tag},positive\nshares slump {tag},negative\n"
               f"record quarter {tag},positive\nregulator fines lender {tag},negative\n").encode()
        body, content_type = _multipart({"name": f"load-{tag}", "role": "sentiment"}, "file", "load.csv", csv)
        with self.client.post("/api/mlops/datasets/", data=body, name="POST /api/mlops/datasets/",
                              headers={**self._api_headers(), "Content-Type": content_type},
                              catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    # --- WebSocket

    @task(3)
    def ping_burst(self) -> None:
        if self.socket is None:
            self._connect()
            if self.socket is None:
                return
        for _ in range(PINGS_PER_BURST):
            started = time.perf_counter()
            try:
                self.socket.send('{"type": "ping"}')
                while True:  # frames of other kinds (broadcasts) may come first
                    frame = json.loads(self.socket.recv())
                    if frame.get("type") == "pong":
                        break
            except Exception as exc:  # a dropped socket is a failure; the next burst reconnects
                self._fire("WS", "ping/pong ws/ping/", started, exc=exc)
                self.on_stop()
                return
            self._fire("WS", "ping/pong ws/ping/", started, length=len(json.dumps(frame)))
