"""Serving in one process: continuous batching of the chat LM, dynamic batching of embeds.

Measures, in-process (no HTTP), with ratios against baselines taken in the same run:

- generation: aggregate generated tokens/s with 1, 4 and 8 concurrent greedy streams of
  ``--max-new-tokens`` each (best of ``--rounds``; baseline: 1 stream; goal >= 2.5x at 4),
  and the p95 time to the first streamed piece at 4 streams (goal <= 1 s);
- embeds: 16 concurrent single-text ``aembed`` calls through the dynamic batcher, against
  the same 16 calls each awaited through the lane unbatched (goal >= 3x) and against one
  in-process ``embed`` of the 16 texts (goal >= 0.7x);
- with ``--numerics``: how often left-padded batching changes greedy output (16 prompts x
  64 tokens: replies that differ from their solo text; max abs difference of next-token
  logits, teacher-forced on the solo tokens).

and over HTTP (the inference API, ``apps/serving``, on a live uvicorn; ``--skip-http`` leaves
it out, ``--http-only`` runs only it):

- ``/v1/chat/completions`` streamed to one client against the same prompts streamed
  in-process, alternating (goal >= 0.9x tokens/s);
- 16 concurrent clients each sending one short text per ``/v1/embeddings`` request: texts/s
  against a server whose batcher takes one request per pass (``TRELLIS_BATCH_MAX_TEXTS=1``,
  goal >= 3x) and against one in-process batched ``embed`` of as many texts (goal >= 0.7x).

    TRELLIS_TORCH_THREADS=2 python bench/bench_serving.py [--max-new-tokens 64] [--rounds 2] [--numerics]
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
from ml.compute_lane import default_lane  # noqa: E402
from ml.generate import ChatLM, GenerationStats  # noqa: E402
from ml.registry import default_registry  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOPICS = ["a dragon who bakes bread", "a robot learning to paint", "a lighthouse keeper's cat", "a lost umbrella",
          "a city under the sea", "a clockmaker's apprentice", "a snowman in summer", "a shy volcano"]
QUESTIONS = [
    "Where is my order? I placed it last week and it has not arrived.", "How do I reset my password?",
    "My card was declined when I tried to pay. What should I do?", "Explain what a refund policy is.",
    "Give me three tips for writing a good customer support reply.", "What is a stock and what is a bond?",
    "Can I change the delivery address of an order that has shipped?", "How long does a refund take?",
]
EMBED_TEXTS = [f"Customer message {i}: my parcel {i} is late, where is it?" for i in range(16)]


def _story(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a long story about {TOPICS[i % len(TOPICS)]}."}]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- generation ---------------------------------------------------------------------------
async def _streams(lm: ChatLM, n: int, max_new_tokens: int) -> tuple[float, list[float], int]:
    """Aggregate tokens/s, first-piece seconds per stream, and tokens, of ``n`` concurrent streams."""
    stats = [GenerationStats() for _ in range(n)]

    async def one(i: int) -> None:
        async for _ in lm.stream(_story(i), max_new_tokens=max_new_tokens, stats=stats[i]):
            pass

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    seconds = time.perf_counter() - started
    tokens = sum(s.tokens for s in stats)
    return tokens / seconds, [s.first_piece_s or seconds for s in stats], tokens


def bench_generation(lm: ChatLM, max_new_tokens: int, rounds: int) -> list[tuple[str, ...]]:
    """Tokens/s per width (best round: other processes on a shared machine only ever slow a
    round down) and first-piece times (every stream of every round)."""
    asyncio.run(_streams(lm, 4, 16))  # warm-up: one-off allocations, a first merge
    rates: dict[int, list[float]] = {1: [], 4: [], 8: []}
    firsts: dict[int, list[float]] = {1: [], 4: [], 8: []}
    for _ in range(rounds):
        for n in rates:  # interleaved, so load from other processes hits every width alike
            rate, first, _tokens = asyncio.run(_streams(lm, n, max_new_tokens))
            rates[n].append(rate)
            firsts[n].extend(first)
    base = max(rates[1])
    rows = [("streams", "aggregate tok/s", "per stream tok/s", "vs 1 stream", "first piece p50 / p95")]
    for n, values in rates.items():
        rate = max(values)
        goal = " (goal >= 2.5x)" if n == 4 else ""
        first_goal = " (goal p95 <= 1 s)" if n == 4 else ""
        rows.append((str(n), f"{rate:.1f}", f"{rate / n:.1f}", f"{rate / base:.2f}x{goal}",
                     f"{statistics.median(firsts[n]):.2f} / {_pct(firsts[n], 0.95):.2f} s{first_goal}"))
    return rows


# -- embeds -------------------------------------------------------------------------------
async def _batched(embedder) -> None:
    await asyncio.gather(*(embedder.aembed([t]) for t in EMBED_TEXTS))


async def _unbatched(embedder) -> None:
    lane = default_lane()
    await asyncio.gather(*(lane.call(embedder.embed, [t]) for t in EMBED_TEXTS))


def _one_call(embedder) -> None:
    default_lane().call_sync(embedder.embed, EMBED_TEXTS)


def bench_embeds(embedder, rounds: int) -> list[tuple[str, ...]]:
    runs = {
        "dynamic batcher (16 x aembed)": lambda: asyncio.run(_batched(embedder)),
        "lane, unbatched (16 x embed)": lambda: asyncio.run(_unbatched(embedder)),
        "one embed of 16 texts": lambda: _one_call(embedder),
    }
    for run in runs.values():
        run()  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    before = embedder.batch_stats().batches
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    passes = (embedder.batch_stats().batches - before) / rounds
    batched = statistics.median(seconds["dynamic batcher (16 x aembed)"])
    rows = [("16 single-text embeds", "ms (median)", "texts/s", "batcher speed vs this")]
    goals = {"lane, unbatched (16 x embed)": " (goal >= 3x)", "one embed of 16 texts": " (goal >= 0.7x)"}
    for name, values in seconds.items():
        ms = statistics.median(values) * 1000
        ratio = "" if name.startswith("dynamic") else f"{statistics.median(values) / batched:.2f}x{goals[name]}"
        label = f"{name}, {passes:.1f} passes" if name.startswith("dynamic") else name
        rows.append((label, f"{ms:.1f}", f"{16 / (ms / 1000):.0f}", ratio))
    return rows


# -- numerics -----------------------------------------------------------------------------
def bench_numerics(lm: ChatLM, max_new_tokens: int) -> list[tuple[str, ...]]:
    """Solo vs batches of 4 (prefilled together, decoded left-padded): differing replies, and
    the next-token logit drift teacher-forced on the solo tokens."""
    import torch

    from ml.kv_batch import BatchKV, prefill, prefill_group

    prompts = [lm.prompt_ids([{"role": "user", "content": q}], max_new_tokens) for q in QUESTIONS]
    prompts += [lm.prompt_ids(_story(i), max_new_tokens) for i in range(8)]

    def decode(group: list[list[int]], forced: list[list[int]] | None) -> tuple[list[list[int]], list[torch.Tensor]]:
        kv = BatchKV(lm.model.device)
        tokens, logits_seen = [], []
        if len(group) == 1:  # alone, as a lone stream is prefilled
            cache = BatchKV.new_cache()
            first = prefill(lm.model, cache, group[0], 0)
            kv.add(cache)
            tokens.append([int(first.argmax())])
        else:  # together, left-padded, as streams that arrive together are prefilled
            cache, mask, firsts = prefill_group(lm.model, group, pad_id=0)
            kv.add(cache, mask)
            tokens.extend([int(t)] for t in firsts.argmax(dim=-1).tolist())
        positions = [len(ids) for ids in group]
        for step in range(max_new_tokens - 1):
            feed = [f[step] for f in forced] if forced else [t[-1] for t in tokens]
            logits = kv.step(lm.model, feed, positions).float()
            logits_seen.append(logits)
            positions = [p + 1 for p in positions]
            for row, token in enumerate(logits.argmax(dim=-1).tolist()):
                tokens[row].append(token)
        return tokens, logits_seen

    def job() -> tuple[int, float]:
        with devices.inference_context(lm.info):
            solo = [decode([ids], None) for ids in prompts]
            differing, drift = 0, 0.0
            for start in range(0, len(prompts), 4):
                group = prompts[start : start + 4]
                free, _ = decode(group, None)
                forced_tokens = [solo[start + r][0][0] for r in range(len(group))]
                _, forced_logits = decode(group, forced_tokens)
                for r in range(len(group)):
                    text = lm.tokenizer.decode(free[r], skip_special_tokens=True)
                    differing += text != lm.tokenizer.decode(forced_tokens[r], skip_special_tokens=True)
                    solo_logits = solo[start + r][1]
                    for step, batch_logits in enumerate(forced_logits):
                        drift = max(drift, float((batch_logits[r] - solo_logits[step][0]).abs().max()))
            return differing, drift

    differing, drift = default_lane().call_sync(job)
    return [
        ("padding numerics (batches of 4, greedy)", "value"),
        (f"replies differing from solo, of {len(prompts)} x {max_new_tokens} tokens", str(differing)),
        ("max abs next-token logit difference", f"{drift:.2e}"),
    ]


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()


# =====================================================================================
# HTTP part: the inference API (apps/serving, /v1/*) over a live uvicorn, against the
# same work in this process. Written with the API; the in-process part above is separate.
# =====================================================================================

HTTP_CLIENTS = 16  # concurrent embedding clients, one short text per request
HTTP_SERVER_VARS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_PRODUCTION", "DJANGO_SECRET_KEY",
                    "DJANGO_ALLOWED_HOSTS", "TRELLIS_SERVER_NAME")
HTTP_EMBED_TEXTS = [
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

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers (seconds: 15)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


def _server_env(var_dir: Path, threads: int, **extra: str) -> dict[str, str]:
    """The embedded default in ``var_dir`` (no PostgreSQL/Redis), rate limits out of the way."""
    env = {k: v for k, v in os.environ.items() if k not in HTTP_SERVER_VARS}
    return {**env, "DJANGO_SETTINGS_MODULE": "config.settings", "TRELLIS_VAR_DIR": str(var_dir),
            "TRELLIS_TORCH_THREADS": str(threads), "TRELLIS_THROTTLE_EMBEDDINGS": "10000000/minute",
            "TRELLIS_THROTTLE_CHAT": "1000000/minute", "PYTHONUNBUFFERED": "1", **extra}


def _http_json(url: str, payload: dict | None = None, token: str | None = None, timeout: float = 120) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Token {token}"} if token else {})}
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers=headers,  # noqa: S310 - http:// of the local server
                                     method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the local server
        return json.loads(response.read())


def http_server_start(var_dir: Path, threads: int, **extra: str) -> LiveServer:
    """uvicorn on a free port of 127.0.0.1, once ``/healthz`` answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = var_dir / f"uvicorn-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--lifespan", "off", "--no-access-log"],
            cwd=REPO, env=_server_env(var_dir, threads, **extra), stdout=out, stderr=subprocess.STDOUT,
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


def http_var_dir(threads: int) -> Path:
    """A migrated embedded-default var dir with the demo users (the bench logs in as agent)."""
    var_dir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    env = _server_env(var_dir, threads)
    for command in (["migrate", "--noinput", "-v", "0"], ["create_demo_users"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, env=env, check=True,
                       capture_output=True, timeout=600)
    return var_dir


def http_chat_stream(url: str, token: str, prompt: str, max_new_tokens: int) -> tuple[int, float, str]:
    """Tokens (usage of the last chunk), seconds to ``[DONE]`` and text of one streamed reply."""
    host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
    conn = http.client.HTTPConnection(host, port, timeout=300)
    body = {"model": "chat-lm", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_new_tokens, "stream": True}
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body),
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
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
    pieces = [p async for p in lm.stream([{"role": "user", "content": prompt}], max_new_tokens=max_new_tokens,
                                         stats=stats)]
    return stats.tokens, time.perf_counter() - started, "".join(pieces)


def http_embed_clients(url: str, token: str, clients: int, per_client: int) -> tuple[int, float]:
    """``clients`` threads, each on its own keep-alive connection, each sending ``per_client``
    requests of one short text (base64, as the SDKs ask); returns (texts, seconds)."""
    host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
    start = threading.Barrier(clients + 1)
    failures: list[str] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        conn.connect()
        start.wait()
        for i in range(per_client):
            text = HTTP_EMBED_TEXTS[(n + i) % len(HTTP_EMBED_TEXTS)]
            conn.request("POST", "/v1/embeddings",
                         body=json.dumps({"model": "embedder", "input": text, "encoding_format": "base64"}),
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                failures.append(f"{response.status}: {payload[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} embedding requests failed, e.g. {failures[0]}")
    return clients * per_client, seconds


def http_bench(threads: int, max_new_tokens: int, chat_rounds: int, per_client: int) -> bool:
    """The HTTP figures, printed; True when every goal is met."""
    var_dir = http_var_dir(threads)
    registry = default_registry()
    lm: ChatLM = registry.get("chat-lm")
    embedder = registry.get("embedder")
    results: dict[str, float] = {}

    server = http_server_start(var_dir, threads)
    try:
        token = _http_json(server.url + "/api/auth/token/", {"username": "agent", "password": "trellis-demo"})["token"]
        # Warm-up: both sides load their models and pay one-off allocations.
        http_chat_stream(server.url, token, "Hello!", 8)
        asyncio.run(_in_process_stream(lm, "Hello!", 8))
        http_embed_clients(server.url, token, HTTP_CLIENTS, 2)

        http_tokens = http_s = local_tokens = local_s = 0.0
        for round_no in range(chat_rounds):
            for i, prompt in enumerate(QUESTIONS):  # alternate, so load from other processes hits both alike
                order = ("http", "local") if (i + round_no) % 2 == 0 else ("local", "http")
                for which in order:
                    if which == "http":
                        n, seconds, _ = http_chat_stream(server.url, token, prompt, max_new_tokens)
                        http_tokens, http_s = http_tokens + n, http_s + seconds
                    else:
                        n, seconds, _ = asyncio.run(_in_process_stream(lm, prompt, max_new_tokens))
                        local_tokens, local_s = local_tokens + n, local_s + seconds
        results["chat_http"], results["chat_local"] = http_tokens / http_s, local_tokens / local_s

        texts, seconds = http_embed_clients(server.url, token, HTTP_CLIENTS, per_client)
        results["embed_batched"] = texts / seconds
    finally:
        server.stop()

    # The same load on a server whose batcher takes one request per forward pass.
    server = http_server_start(var_dir, threads, TRELLIS_BATCH_MAX_TEXTS="1")
    try:
        token = _http_json(server.url + "/api/auth/token/", {"username": "agent", "password": "trellis-demo"})["token"]
        http_embed_clients(server.url, token, HTTP_CLIENTS, 2)
        texts, seconds = http_embed_clients(server.url, token, HTTP_CLIENTS, per_client)
        results["embed_unbatched"] = texts / seconds
    finally:
        server.stop()

    all_texts = [HTTP_EMBED_TEXTS[i % len(HTTP_EMBED_TEXTS)] for i in range(HTTP_CLIENTS * per_client)]
    embedder.embed(all_texts[:64])
    started = time.perf_counter()
    embedder.embed(all_texts, batch_size=64)
    results["embed_local"] = len(all_texts) / (time.perf_counter() - started)
    shutil.rmtree(var_dir, ignore_errors=True)

    chat_ratio = results["chat_http"] / results["chat_local"]
    batch_ratio = results["embed_batched"] / results["embed_unbatched"]
    local_ratio = results["embed_batched"] / results["embed_local"]
    print(
        f"inference API over HTTP (uvicorn, {threads} torch thread(s) per process): "
        f"chat {len(QUESTIONS) * chat_rounds} prompts x max {max_new_tokens} tokens, one client; "
        f"embeddings {HTTP_CLIENTS} clients x {per_client} requests of one text; load "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
    )
    _table(
        [
            ("measure", "HTTP", "baseline", "ratio"),
            ("chat stream tokens/s (vs in-process stream)", f"{results['chat_http']:.1f}",
             f"{results['chat_local']:.1f}", f"{chat_ratio:.2f}x (goal >= 0.9x)"),
            ("embeddings texts/s (vs server without batching)", f"{results['embed_batched']:.1f}",
             f"{results['embed_unbatched']:.1f}", f"{batch_ratio:.2f}x (goal >= 3x)"),
            ("embeddings texts/s (vs in-process batched embed)", f"{results['embed_batched']:.1f}",
             f"{results['embed_local']:.1f}", f"{local_ratio:.2f}x (goal >= 0.7x)"),
        ],
    )
    return chat_ratio >= 0.9 and batch_ratio >= 3 and local_ratio >= 0.7


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="repetitions of each measurement (median)")
    parser.add_argument("--numerics", action="store_true", help="also measure padding numerics (slow)")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--skip-http", action="store_true", help="leave out the HTTP part (starts uvicorn twice)")
    parser.add_argument("--http-only", action="store_true", help="only the HTTP part")
    parser.add_argument("--http-rounds", type=int, default=1, help="HTTP part: passes over the chat prompts")
    parser.add_argument("--http-requests", type=int, default=20, help="HTTP part: requests per embedding client")
    args = parser.parse_args()
    if args.http_only:
        info = devices.current()
        ok = http_bench(info.threads, args.max_new_tokens, args.http_rounds, args.http_requests)
        return 0 if ok else 1

    info = devices.current()
    registry = default_registry()
    lm, embedder = registry.get("chat-lm"), registry.get("embedder")
    print(f"\nserving in-process: {lm.version} on {info.device} ({str(info.dtype).removeprefix('torch.')}), "
          f"{info.threads} torch thread(s), gate {lm.gate.max_concurrent} rows, greedy, "
          f"{args.max_new_tokens} new tokens a stream, {args.rounds} round(s); load "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    if not args.skip_generation:
        _table(bench_generation(lm, args.max_new_tokens, args.rounds))
    _table(bench_embeds(embedder, max(3, args.rounds * 3)))
    if args.numerics:
        _table(bench_numerics(lm, args.max_new_tokens))
    if not args.skip_http:
        http_bench(info.threads, args.max_new_tokens, args.http_rounds, args.http_requests)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
