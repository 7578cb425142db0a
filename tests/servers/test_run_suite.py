"""`manage.py run_suite`: starts web, worker and beat on the embedded default; Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.servers.conftest import PYTHON, child_env, free_port, wait_for_healthz

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]

STOP_TIMEOUT = 60  # seconds: run_suite allows its children 15 s of warm shutdown, then kills


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a live process, None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[1]), int(fields[19]))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _descendants(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (start time, command line) of every live process below ``root``."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            children.setdefault(stat[1], []).append(int(entry.name))
            starts[int(entry.name)] = stat[2]
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = (starts[pid], _cmdline(pid))
        todo.extend(children.get(pid, []))
    return found


def _alive(pid: int, start: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[2] == start  # same start time: not a recycled pid


def test_sigint_stops_every_child(start_process, tmp_path):
    port = free_port()
    suite = start_process(
        "run_suite",
        [PYTHON, "manage.py", "run_suite", "--no-demo", "--port", str(port)],  # the demos are tested on their own
        child_env(tmp_path / "var"),
        port=port,
    )
    tree: dict[int, tuple[int, str]] = {}
    try:
        assert wait_for_healthz(suite)["status"] == "ok"
        assert "database: sqlite3" in suite.log.read_text()
        # The worker (with its prefork child) and beat come up beside the web server; wait (bounded) for all.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            tree = _descendants(suite.proc.pid)
            commands = [cmd for _, cmd in tree.values()]
            if (
                any(f"--port {port}" in c and "uvicorn" in c and "--ws-max-size 65536" in c for c in commands)
                and sum(" worker " in c for c in commands) >= 2  # the worker and its pool process
                and any(" beat " in c for c in commands)
            ):
                break
            time.sleep(0.25)
        else:
            pytest.fail(f"web, worker and beat did not all start: {tree}\n{suite.log_tail()}")

        suite.proc.send_signal(signal.SIGINT)
        returncode = suite.proc.wait(timeout=STOP_TIMEOUT)

        assert returncode == 0, suite.log_tail()
        assert "Trellis stopped." in suite.log.read_text()
        survivors = {pid: cmd for pid, (start, cmd) in tree.items() if _alive(pid, start)}
        assert survivors == {}, f"still running after run_suite stopped: {survivors}"
    finally:
        for pid, (start, _) in tree.items():  # never leave a stray worker behind, whatever happened
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)
