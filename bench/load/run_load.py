"""Load test: start the suite, step up the number of users, report latency, throughput and the knee.

    .venv/bin/python bench/load/run_load.py                 # one uvicorn on the embedded default
    REDIS_URL=redis://127.0.0.1:6379/0 DATABASE_URL=postgres://postgres@127.0.0.1:5432/trellis_load \\
        .venv/bin/python bench/load/run_load.py --redis     # two uvicorns sharing the Redis channel layer

What it does:
1. Migrates a database of its own (embedded default: a fresh SQLite under the output folder;
   ``--redis``: the database of ``DATABASE_URL``, which must exist: ``createdb``), creates the
   demo users, gives ``analyst`` a random password, and starts one uvicorn (``--redis``: two, on ports
   8001 and 8002, users spread over both) with the API throttles raised out of the way
   (``TRELLIS_THROTTLE_ANON`` / ``_USER`` = 10^6/minute): the test measures the server, not
   the rate limits.
2. Signs the analyst in once (an API token, a session cookie), warms the servers up for
   ``WARMUP_S`` (not reported), and runs
   ``bench/load/locustfile.py`` headless in steps of 1, 2, 4, ... users, each for
   ``--step-seconds``, one fresh locust process per step so that every step has its own stats.
3. Prints, per step, requests/s, p50/p95/p99 and failures for the aggregate and for each
   endpoint (from locust's ``--csv`` files, kept under ``--out``), the CPU the servers and
   locust used, and the knee: the first step whose aggregate p95 is at least twice the p95
   at the lowest load.

Locust runs as one process (one core at most; gevent is single-threaded) under ``nice``, so
on a 2-core machine the servers keep the other core and win when both want the same one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
HIGH_RATE = "1000000/minute"  # throttles out of the way: the test measures the server
LOAD_USER = "analyst"  # a role that may read and upload sentiment datasets
KNEE_FACTOR = 2.0
WARMUP_S = 10
SET_PASSWORD = (
    "import os; from django.contrib.auth import get_user_model; "
    f"u = get_user_model().objects.get(username={LOAD_USER!r}); "
    "u.set_password(os.environ['TRELLIS_LOAD_PASSWORD']); u.save()"
)


@dataclass
class Row:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass
class Step:
    users: int
    seconds: int
    aggregate: Row
    endpoints: list[Row] = field(default_factory=list)
    server_cpu_pct: float = 0.0  # of one core, all servers together
    locust_cpu_pct: float = 0.0


def _env(args: argparse.Namespace, var_dir: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRELLIS_VAR_DIR": str(var_dir),
           "TRELLIS_THROTTLE_ANON": HIGH_RATE, "TRELLIS_THROTTLE_USER": HIGH_RATE,
           "TRELLIS_THROTTLE_LOGIN_USERNAME": HIGH_RATE,
           "TRELLIS_TORCH_THREADS": "1", "TRELLIS_LOG_LEVEL": "WARNING"}
    if args.redis:
        if not (env.get("DATABASE_URL") and env.get("REDIS_URL")):
            sys.exit("--redis needs DATABASE_URL (an existing PostgreSQL database) and REDIS_URL")
    else:
        for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
            env.pop(name, None)
    return env


def _manage(env: dict[str, str], *argv: str) -> None:
    subprocess.run([PYTHON, "manage.py", *argv], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)


def _start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [PYTHON, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
            "--ws", "websockets", "--no-proxy-headers", "--lifespan", "off", "--no-access-log",
            "--log-level", "warning"]
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=REPO, env={**env, "TRELLIS_SERVER_NAME": f"load-{port}"},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server {base} exited with {proc.returncode}; see its log")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    sys.exit(f"server {base} not healthy after {timeout_s:.0f} s")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _credentials(base: str, password: str) -> dict[str, str]:
    """An API token and a session cookie of the load user, and how sockets authenticate."""
    response = requests.post(f"{base}/api/auth/token/", json={"username": LOAD_USER, "password": password}, timeout=30)
    response.raise_for_status()
    token = response.json()["token"]
    browser = requests.Session()
    form = browser.get(f"{base}/accounts/login/", timeout=30)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    if not match:
        sys.exit("no CSRF token on the login page")
    browser.post(f"{base}/accounts/login/", timeout=30, allow_redirects=False, headers={"Referer": f"{base}/"},
                 data={"username": LOAD_USER, "password": password, "csrfmiddlewaretoken": match.group(1)})
    cookie = next((c for c in browser.cookies if c.name not in ("csrftoken",)), None)
    if cookie is None:
        sys.exit("signing in through the login page gave no session cookie")
    ticket = requests.post(f"{base}/api/auth/ws-ticket/", headers={"Authorization": f"Token {token}"}, timeout=30)
    return {"TRELLIS_LOAD_TOKEN": token, "TRELLIS_LOAD_SESSION": cookie.value,
            "TRELLIS_LOAD_SESSION_COOKIE": cookie.name,
            "TRELLIS_LOAD_WS_AUTH": "ticket" if ticket.status_code == 200 else "token"}


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:  # "N/A" when a row has no requests
        return None


def _rows(stats_csv: Path) -> tuple[Row, list[Row]]:
    aggregate, endpoints = None, []
    with stats_csv.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            kind, label = rec["Type"], rec["Name"]
            name = label if not kind or label.startswith(kind) else f"{kind} {label}"
            row = Row(name=name, requests=int(rec["Request Count"]), failures=int(rec["Failure Count"]),
                      rps=float(rec["Requests/s"]), p50=_number(rec["50%"]), p95=_number(rec["95%"]),
                      p99=_number(rec["99%"]))
            if rec["Name"] == "Aggregated":
                aggregate = row
            else:
                endpoints.append(row)
    if aggregate is None:
        sys.exit(f"{stats_csv} has no aggregate row")
    return aggregate, endpoints


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _run_step(users: int, seconds: int, out: Path, env: dict[str, str], servers: list[psutil.Process],
              label: str = "") -> Step:
    label = label or f"step-{users:03d}"
    prefix = out / label
    argv = ["nice", "-n", "10", PYTHON, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "-u", str(users), "-r", str(users), "--run-time", f"{seconds}s", "--stop-timeout", "5",
            "--csv", str(prefix), "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    server_before = _cpu_seconds(servers)
    started = time.monotonic()
    with (out / f"{label}.log").open("wb") as log:
        locust = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        watched = psutil.Process(locust.pid)
        locust_cpu = 0.0
        while locust.poll() is None:
            try:
                locust_cpu = _cpu_seconds([watched, *watched.children(recursive=True)])
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.5)
    wall = time.monotonic() - started
    if locust.returncode != 0:
        sys.exit(f"locust exited with {locust.returncode}; see {out}/{label}.log")
    aggregate, endpoints = _rows(Path(f"{prefix}_stats.csv"))
    return Step(users=users, seconds=seconds, aggregate=aggregate, endpoints=endpoints,
                server_cpu_pct=100 * (_cpu_seconds(servers) - server_before) / wall,
                locust_cpu_pct=100 * locust_cpu / wall)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def knee(steps: list[Step]) -> Step | None:
    """The first step whose aggregate p95 is at least KNEE_FACTOR times that of the lowest load."""
    base = steps[0].aggregate.p95 if steps else None
    if not base:
        return None
    return next((s for s in steps[1:] if (s.aggregate.p95 or 0) >= KNEE_FACTOR * base), None)


def report(steps: list[Step], mode: str) -> str:
    lines = [f"Trellis load test ({mode}); latencies in ms; CPU in % of one core",
             "", f"{'users':>5} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6} {'fail':>6} {'srv CPU':>8} {'locust':>7}"]
    for s in steps:
        a = s.aggregate
        lines.append(f"{s.users:>5} {a.rps:>7.1f} {_ms(a.p50):>6} {_ms(a.p95):>6} {_ms(a.p99):>6} "
                     f"{a.failures:>6} {s.server_cpu_pct:>7.0f}% {s.locust_cpu_pct:>6.0f}%")
    found = knee(steps)
    lines.append("")
    if found is None:
        lines.append(f"knee: none up to {steps[-1].users} users "
                     f"(p95 stayed under {KNEE_FACTOR:g}x its lowest-load value)")
    else:
        lines.append(f"knee: {found.users} users (p95 {_ms(found.aggregate.p95)} ms vs "
                     f"{_ms(steps[0].aggregate.p95)} ms at {steps[0].users})")
    lines += ["", f"{'endpoint':<34} {'users':>5} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6} {'fail':>5}"]
    names = sorted({row.name for s in steps for row in s.endpoints})
    for name in names:
        for s in steps:
            row = next((r for r in s.endpoints if r.name == name), None)
            if row is not None:
                lines.append(f"{name[:34]:<34} {s.users:>5} {row.rps:>7.2f} {_ms(row.p50):>6} {_ms(row.p95):>6} "
                             f"{_ms(row.p99):>6} {row.failures:>5}")
    lines.append("")
    lines.append("locust: one process under nice -n 10 (one core at most); servers: uvicorn, 1 process each, "
                 f"throttles {HIGH_RATE}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", action="store_true", help="two servers (8001, 8002) on DATABASE_URL + REDIS_URL")
    parser.add_argument("--steps", default="1,2,4,8,16,32,64", help="user counts, comma-separated, increasing")
    parser.add_argument("--step-seconds", type=int, default=30, help="seconds per step (locust --run-time)")
    parser.add_argument("--port", type=int, default=8001, help="first server port")
    parser.add_argument("--out", type=Path, default=None, help="folder for locust's CSV files and the report")
    args = parser.parse_args()
    steps_users = [int(n) for n in args.steps.split(",")]
    mode = "two uvicorn servers, PostgreSQL + Redis" if args.redis else "one uvicorn server, embedded default"
    out = args.out or REPO / "var" / "load" / time.strftime(f"{'redis' if args.redis else 'embedded'}-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    var_dir = out / "var"
    shutil.rmtree(var_dir, ignore_errors=True)  # the embedded default starts from an empty SQLite
    var_dir.mkdir()
    env = _env(args, var_dir)
    password = secrets.token_urlsafe(16)
    _manage(env, "migrate", "--no-input")
    _manage(env, "create_demo_users", "--password", password)
    # A database kept from an earlier run has the user already, with that run's password.
    _manage({**env, "TRELLIS_LOAD_PASSWORD": password}, "shell", "-c", SET_PASSWORD)
    ports = [args.port, args.port + 1] if args.redis else [args.port]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [_start_server(env, port, out / f"server-{port}.log") for port in ports]
    try:
        for base, proc in zip(bases, procs, strict=True):
            _wait_healthy(base, proc)
        load_env = {**env, "TRELLIS_LOAD_HOSTS": ",".join(bases), **_credentials(bases[0], password)}
        print(f"{mode}: {', '.join(bases)}; sockets authenticate with a {load_env['TRELLIS_LOAD_WS_AUTH']}; "
              f"{len(steps_users)} steps of {args.step_seconds} s", flush=True)
        servers = [psutil.Process(p.pid) for p in procs]
        # Warm-up, not reported: the first requests of a fresh server import and compile lazily
        # (templates, serializers, the socket stack) and would inflate the lowest step's p95.
        warm = _run_step(len(bases) * 2, WARMUP_S, out, load_env, servers, label="warmup")
        print(f"  warm-up: {warm.aggregate.requests} requests, {warm.aggregate.failures} failures", flush=True)
        steps = []
        for users in steps_users:
            steps.append(_run_step(users, args.step_seconds, out, load_env, servers))
            a = steps[-1].aggregate
            print(f"  {users:>3} users: {a.rps:.1f} req/s, p95 {_ms(a.p95)} ms, {a.failures} failures", flush=True)
    finally:
        _stop(procs)
    text = report(steps, mode)
    print("\n" + text)
    (out / "report.txt").write_text(text + "\n")
    (out / "report.json").write_text(json.dumps({"mode": mode, "steps": [asdict(s) for s in steps],
                                                 "knee_users": (k.users if (k := knee(steps)) else None)}, indent=2))
    print(f"\nfiles: {out}")


if __name__ == "__main__":
    main()
