"""The inference API over HTTP (``apps/serving``, ``/v1/*``) on live uvicorn servers, against the
same work done in this process. Run through ``bench/bench_serving.py --http-only`` (or as a
part of its full run), or alone:

    TRELLIS_TORCH_THREADS=1 python bench/bench_serving_http.py [--embed-rounds 3] [--production]

- ``/v1/chat/completions`` streamed to one client against the same prompts streamed
  in-process, alternating (goal >= 0.9x tokens/s);
- 16 concurrent clients each sending one short text per ``/v1/embeddings`` request: texts/s
  against a server whose batcher takes one request per pass (``TRELLIS_BATCH_MAX_TEXTS=1``,
  goal >= 3x), against one in-process batched ``embed`` of as many texts (goal >= 0.7x), and
  against a server whose embedding requests all go through Django's stack
  (``TRELLIS_EMBEDDINGS_FAST_PATH=0``: what ``apps.serving.fastpath`` saves). The four run in
  turn, ``--embed-rounds`` times (the servers stay up), and each keeps its best round:
  other processes on a shared machine only ever slow a round down. CPU seconds per request
  of the server process and of this (client) process are printed beside them, a figure load
  from other processes disturbs less than throughput.

The servers run on the embedded default (SQLite, in-memory layers, database-table
throttles) in a fresh var dir; with ``--production`` on the ``DATABASE_URL`` and
``REDIS_URL`` of the environment instead (migrated first).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ml import devices  # noqa: E402
from ml.generate import ChatLM, GenerationStats  # noqa: E402
from ml.registry import default_registry  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HTTP_CLIENTS = 16  # concurrent embedding clients, one short text per request
SERVER_ONLY_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DJANGO_PRODUCTION",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "TRELLIS_SERVER_NAME",
)
PRODUCTION_VARS = ("DATABASE_URL", "REDIS_URL")
QUESTIONS = [
    "Where is my order? I placed it last week and it has not arrived.",
    "How do I reset my password?",
    "My card was declined when I tried to pay. What should I do?",
    "Explain what a refund policy is.",
    "Give me three tips for writing a good customer support reply.",
    "What is a stock and what is a bond?",
    "Can I change the delivery address of an order that has shipped?",
    "How long does a refund take?",
]
EMBED_TEXTS = [
    "Where is my order?",
    "I want a refund for the broken kettle.",
    "How do I reset my password?",
    "My card was declined at checkout.",
    "Can I change the delivery address?",
    "Talk to a human please.",
    "Shares of Apple rose after strong results.",
    "The bank cut its growth forecast.",
]


@dataclass
class LiveServer:
    proc: subprocess.Popen
    url: str
    log: Path

    def cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers (seconds: 15)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


def _server_env(var_dir: Path, threads: int, production: bool, **extra: str) -> dict[str, str]:
    """The embedded default in ``var_dir`` (or PostgreSQL + Redis), rate limits out of the way."""
    keep = PRODUCTION_VARS if production else ()
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ONLY_VARS or k in keep}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TRELLIS_VAR_DIR": str(var_dir),
        "TRELLIS_TORCH_THREADS": str(threads),
        "TRELLIS_THROTTLE_EMBEDDINGS": "10000000/minute",
        "TRELLIS_THROTTLE_CHAT": "1000000/minute",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _http_json(url: str, payload: dict | None = None, token: str | None = None, timeout: float = 120) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Token {token}"} if token else {})}
    data = json.dumps(payload).encode() if payload is not None else None
    method = "POST" if data else "GET"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - the local server
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the local server
        return json.loads(response.read())


def http_server_start(var_dir: Path, threads: int, production: bool = False, **extra: str) -> LiveServer:
    """uvicorn on a free port of 127.0.0.1, once ``/healthz`` answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = var_dir / f"uvicorn-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--lifespan",
                "off",
                "--no-access-log",
            ],
            cwd=REPO,
            env=_server_env(var_dir, threads, production, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited:\n{log.read_text()[-3000:]}")
        try:
            _http_json(server.url + "/healthz", timeout=5)
            return server
        except (OSError, ValueError):
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"uvicorn did not start:\n{log.read_text()[-3000:]}")


def http_var_dir(threads: int, production: bool = False) -> Path:
    """A migrated var dir with the demo users (the bench logs in as agent)."""
    var_dir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    env = _server_env(var_dir, threads, production)
    for command in (["migrate", "--noinput", "-v", "0"], ["create_demo_users"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=REPO, env=env, check=True, capture_output=True, timeout=600
        )
    return var_dir


def http_token(server: LiveServer) -> str:
    return _http_json(server.url + "/api/auth/token/", {"username": "agent", "password": "trellis-demo"})["token"]


def http_chat_stream(url: str, token: str, prompt: str, max_new_tokens: int) -> tuple[int, float, str]:
    """Tokens (usage of the last chunk), seconds to ``[DONE]`` and text of one streamed reply."""
    host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
    conn = http.client.HTTPConnection(host, port, timeout=300)
    body = {
        "model": "chat-lm",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_new_tokens,
        "stream": True,
    }
    started = time.perf_counter()
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"chat answered {response.status}: {response.read()[:500]!r}")
    tokens, pieces = 0, []
    try:
        while line := response.readline():
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if chunk["choices"]:
                pieces.append(chunk["choices"][0]["delta"].get("content") or "")
    finally:
        conn.close()
    return tokens, time.perf_counter() - started, "".join(pieces)


async def _in_process_stream(lm: ChatLM, prompt: str, max_new_tokens: int) -> tuple[int, float, str]:
    stats = GenerationStats()
    started = time.perf_counter()
    pieces = [
        p async for p in lm.stream([{"role": "user", "content": prompt}], max_new_tokens=max_new_tokens, stats=stats)
    ]
    return stats.tokens, time.perf_counter() - started, "".join(pieces)


@dataclass
class EmbedRun:
    texts: int
    seconds: float
    server_cpu_ms: float  # per request
    client_cpu_ms: float  # per request, this process (all its threads)

    @property
    def rate(self) -> float:
        return self.texts / self.seconds


def http_embed_clients(server: LiveServer, token: str, clients: int, per_client: int) -> EmbedRun:
    """``clients`` threads, each on its own keep-alive connection, each sending ``per_client``
    requests of one short text (base64, as the SDKs ask)."""
    host, port = urllib.parse.urlsplit(server.url).hostname, urllib.parse.urlsplit(server.url).port
    start = threading.Barrier(clients + 1)
    failures: list[str] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        conn.connect()
        start.wait()
        for i in range(per_client):
            text = EMBED_TEXTS[(n + i) % len(EMBED_TEXTS)]
            conn.request(
                "POST",
                "/v1/embeddings",
                body=json.dumps({"model": "embedder", "input": text, "encoding_format": "base64"}),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                failures.append(f"{response.status}: {payload[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    server_cpu, client_cpu, started = server.cpu_s(), time.process_time(), time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    requests = clients * per_client
    server_ms, client_ms = (server.cpu_s() - server_cpu) * 1000, (time.process_time() - client_cpu) * 1000
    run = EmbedRun(requests, seconds, server_ms / requests, client_ms / requests)
    if failures:
        raise RuntimeError(f"{len(failures)} embedding requests failed, e.g. {failures[0]}")
    return run


def _chat_rates(server: LiveServer, token: str, lm: ChatLM, max_new_tokens: int, rounds: int) -> tuple[float, float]:
    """Tokens/s over HTTP and in-process, the prompts alternating between the two."""
    http_tokens = http_s = local_tokens = local_s = 0.0
    for round_no in range(rounds):
        for i, prompt in enumerate(QUESTIONS):  # alternate, so load from other processes hits both alike
            order = ("http", "local") if (i + round_no) % 2 == 0 else ("local", "http")
            for which in order:
                if which == "http":
                    n, seconds, _ = http_chat_stream(server.url, token, prompt, max_new_tokens)
                    http_tokens, http_s = http_tokens + n, http_s + seconds
                else:
                    n, seconds, _ = asyncio.run(_in_process_stream(lm, prompt, max_new_tokens))
                    local_tokens, local_s = local_tokens + n, local_s + seconds
    return http_tokens / http_s, local_tokens / local_s


def http_bench(
    threads: int,
    max_new_tokens: int,
    chat_rounds: int,
    per_client: int,
    embed_rounds: int = 3,
    production: bool = False,
) -> bool:
    """The HTTP figures, printed; True when every goal is met."""
    var_dir = http_var_dir(threads, production)
    registry = default_registry()
    lm: ChatLM = registry.get("chat-lm")
    embedder = registry.get("embedder")
    all_texts = [EMBED_TEXTS[i % len(EMBED_TEXTS)] for i in range(HTTP_CLIENTS * per_client)]
    servers: list[LiveServer] = []
    try:
        batched = http_server_start(var_dir, threads, production)
        servers.append(batched)
        # The same load on a server whose batcher takes one request per forward pass.
        unbatched = http_server_start(var_dir, threads, production, TRELLIS_BATCH_MAX_TEXTS="1")
        servers.append(unbatched)
        # And on one whose embedding requests all go through Django's stack (no fast path).
        through_django = http_server_start(var_dir, threads, production, TRELLIS_EMBEDDINGS_FAST_PATH="0")
        servers.append(through_django)
        tokens = {server.url: http_token(server) for server in servers}
        # Warm-up: both sides load their models and pay one-off allocations.
        http_chat_stream(batched.url, tokens[batched.url], "Hello!", 8)
        asyncio.run(_in_process_stream(lm, "Hello!", 8))
        for server in servers:
            http_embed_clients(server, tokens[server.url], HTTP_CLIENTS, 2)
        embedder.embed(all_texts[:64])

        chat_http, chat_local = _chat_rates(batched, tokens[batched.url], lm, max_new_tokens, chat_rounds)
        runs: dict[str, list[EmbedRun]] = {"batched": [], "unbatched": [], "through Django": []}
        local_rates: list[float] = []
        for _ in range(embed_rounds):  # in turn, so load from other processes hits all three alike
            runs["batched"].append(http_embed_clients(batched, tokens[batched.url], HTTP_CLIENTS, per_client))
            runs["unbatched"].append(http_embed_clients(unbatched, tokens[unbatched.url], HTTP_CLIENTS, per_client))
            runs["through Django"].append(
                http_embed_clients(through_django, tokens[through_django.url], HTTP_CLIENTS, per_client))
            started = time.perf_counter()
            embedder.embed(all_texts, batch_size=64)
            local_rates.append(len(all_texts) / (time.perf_counter() - started))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(var_dir, ignore_errors=True)

    best = {name: max(values, key=lambda run: run.rate).rate for name, values in runs.items()}
    backend = "PostgreSQL + Redis" if production else "embedded default (SQLite)"
    print(
        f"inference API over HTTP (uvicorn, {backend}, {threads} torch thread(s) per process): chat "
        f"{len(QUESTIONS) * chat_rounds} prompts x max {max_new_tokens} tokens, one client; embeddings "
        f"{HTTP_CLIENTS} clients x {per_client} requests of one text, best of {embed_rounds} rounds; load "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
    )
    figures = [  # measure, HTTP, baseline, goal (ratio)
        ("chat stream tokens/s (vs in-process stream)", chat_http, chat_local, 0.9),
        ("embeddings texts/s (vs server without batching)", best["batched"], best["unbatched"], 3.0),
        ("embeddings texts/s (vs in-process batched embed)", best["batched"], max(local_rates), 0.7),
        ("embeddings texts/s (vs all requests through Django)", best["batched"], best["through Django"], None),
    ]
    print_table(
        [
            ("measure", "HTTP", "baseline", "ratio"),
            *((name, f"{a:.1f}", f"{b:.1f}", f"{a / b:.2f}x" + (f" (goal >= {goal:g}x)" if goal else ""))
              for name, a, b, goal in figures),
        ]
    )
    print_table(
        [
            ("embeddings, CPU per request (median of rounds)", "server ms", "client ms"),
            *(
                (
                    f"{name} server",
                    f"{statistics.median([r.server_cpu_ms for r in values]):.2f}",
                    f"{statistics.median([r.client_cpu_ms for r in values]):.2f}",
                )
                for name, values in runs.items()
            ),
        ]
    )
    return all(a / b >= goal for _, a, b, goal in figures if goal)


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http-rounds", type=int, default=1, help="HTTP part: passes over the chat prompts")
    parser.add_argument("--http-requests", type=int, default=20, help="HTTP part: requests per embedding client")
    parser.add_argument("--embed-rounds", type=int, default=3, help="HTTP part: embedding rounds (best is kept)")
    parser.add_argument(
        "--production",
        action="store_true",
        help="HTTP part: servers on DATABASE_URL + REDIS_URL (migrated first), not the embedded one",
    )


def run(args: argparse.Namespace) -> bool:
    if args.production and not all(os.environ.get(name) for name in PRODUCTION_VARS):
        raise SystemExit("--production needs DATABASE_URL and REDIS_URL")
    return http_bench(
        devices.current().threads,
        args.max_new_tokens,
        args.http_rounds,
        args.http_requests,
        args.embed_rounds,
        args.production,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    add_arguments(parser)
    return 0 if run(parser.parse_args()) else 1


if __name__ == "__main__":
    sys.exit(main())
