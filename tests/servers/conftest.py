"""Real processes (uvicorn, Celery worker, run_suite) on free ports, always stopped afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import REPO

PYTHON = sys.executable
START_TIMEOUT = 90  # seconds: importing Django, Channels and torch on a loaded 2-core machine
# Variables that would take a child off the embedded default or onto production settings.
SERVER_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "DJANGO_PRODUCTION",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "TRELLIS_SERVER_NAME",
)

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="REDIS_URL is not set: this test needs Redis (and DATABASE_URL for PostgreSQL) as in CI",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_async(scenario: Callable[[], Awaitable[object]]) -> object:
    """Runs ``scenario()`` on a fresh event loop in a worker thread.

    Not ``asyncio.run`` here: once tests/e2e ran, Playwright's sync API keeps an event loop
    running on the main thread for the rest of the session.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(scenario())).result()


def child_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment for a child: its own var dir, one torch thread, unbuffered logs."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TRELLIS_VAR_DIR": str(var_dir),
        "TRELLIS_TORCH_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def manage(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def shared_database_url() -> str:
    """URL of the database pytest-django created, for children that must share it."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql", "multi-process tests share PostgreSQL, not SQLite"
    auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    log: Path
    port: int | None = None
    health: dict | None = None  # the last /healthz answer, set by wait_for_healthz

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the child's process group, SIGKILL if it lingers (seconds: 15)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    except ProcessLookupError:
        proc.wait(timeout=15)


def launch(name: str, argv: list[str], env: dict[str, str], log: Path, port: int | None = None) -> Server:
    """Starts ``argv`` in its own process group (so ``_stop`` reaches its children), output to ``log``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Server(name, proc, log, port)


@pytest.fixture
def start_process(tmp_path) -> Iterator[Callable[..., Server]]:
    """``start_process(name, argv, env, port=None)`` -> a running child in its own process group."""
    started: list[Server] = []

    def start(name: str, argv: list[str], env: dict[str, str], port: int | None = None) -> Server:
        server = launch(name, argv, env, tmp_path / f"{name}.log", port)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        _stop(server.proc)


def get_json(url: str, timeout: float = 10, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def post_json(url: str, payload: dict, timeout: float = 10, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def ws_ticket(server_url: str, token: str) -> str:
    """A single-use WebSocket ticket from ``server_url``, paid for with API token ``token``."""
    status, body = post_json(server_url + "/api/auth/ws-ticket/", {}, headers={"Authorization": f"Token {token}"})
    assert status == 200, body
    return body["ticket"]


def wait_for_healthz(server: Server, timeout: float = START_TIMEOUT) -> dict:
    """Polls /healthz until the server answers 200; fails early with the log if it exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            status, body = get_json(server.url + "/healthz", timeout=5)
            if status == 200:
                server.health = body
                return body
            last = f"{status} {body}"
        except (OSError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.25)
    pytest.fail(f"{server.name} not healthy after {timeout}s ({last}):\n{server.log_tail()}")


def uvicorn_argv(port: int) -> list[str]:
    """uvicorn as ``run_suite`` starts it (frame limit, no proxy headers), on ``port``."""
    from django.conf import settings

    return [
        PYTHON,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws",
        "websockets",
        "--ws-max-size",
        str(settings.WEBSOCKET_MAX_FRAME_BYTES),
        "--no-proxy-headers",
        "--lifespan",
        "off",
    ]


@pytest.fixture(scope="session")
def embedded_var(tmp_path_factory) -> Path:
    """A migrated embedded-default var dir (SQLite, filesystem broker) with the demo users."""
    var = tmp_path_factory.mktemp("embedded-var")
    env = child_env(var)
    manage(["migrate", "--noinput", "-v", "0"], env)
    manage(["create_demo_users"], env)
    return var


@pytest.fixture(scope="session")
def embedded_uvicorn(embedded_var, tmp_path_factory) -> Iterator[Server]:
    """One uvicorn on ``embedded_var``, started as ``run_suite`` starts it (default limits, access
    log on), shared by the tests that only talk to it: each start costs seconds of imports.
    Its log holds every test's lines; a test looks for its own (its token, its ticket)."""
    port = free_port()
    server = launch(
        "uvicorn", uvicorn_argv(port), child_env(embedded_var), tmp_path_factory.mktemp("uvicorn") / "uvicorn.log", port
    )
    try:
        wait_for_healthz(server)
        yield server
    finally:
        _stop(server.proc)
