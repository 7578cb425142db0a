"""The chat socket (``ws/chat/<id>/``) on a live uvicorn process with the real bundled models,
against the raw ``ml`` stream of the same prompts in this process.

- 1 and 4 customers asking at once: streamed pieces per second (aggregate, first piece to
  last) through the socket vs ``ChatLM.stream`` in-process on the same prompts (the pipeline's
  own prompt: retrieved ABCD passages + question), alternating, best of ``--rounds``
  (goal >= 0.9x); time to the first piece, p50/p95 (goal p95 <= 1 s with 1, <= 2 s with 4).
  The socket's time counts from sending the message, so it includes what the pipeline does
  before generating (redaction, retrieval, intent, two database writes); the raw one counts
  from the call.
- 100 idle visitor sockets (hello + history) plus 4 generating at once on one process: error
  frames / refused or dropped sockets, and the server's RSS before and after.

The server runs on the embedded default (SQLite, in-memory channel layer) in a fresh var dir,
with the ABCD knowledge base (``manage.py kb_demo``) and the bundled models; both processes
use ``TRELLIS_TORCH_THREADS`` threads and take turns, never generating at the same time.

    nice -n 10 env TRELLIS_TORCH_THREADS=1 python bench/bench_chat_socket.py [--rounds 2] [--idle 100]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
ORIGIN = "http://127.0.0.1"  # one of our own hosts: the widget's route check is not what is measured
QUESTIONS = [
    "How long do silver members have to return an item?",
    "How do I reset my password if I forgot it?",
    "How much does shipping cost for my order?",
    "Can I change the shipping address after I placed the order?",
    "How do I apply a promo code to my purchase?",
    "What happens if my item arrives damaged?",
    "How can I check the status of my refund?",
    "Can I cancel my order after it has shipped?",
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Reply:
    ttft_s: float | None = None
    first_at: float | None = None
    last_at: float | None = None
    pieces: int = 0
    errors: list[str] = field(default_factory=list)


# --- setup ---------------------------------------------------------------------------------


def setup(threads: int) -> tuple[object, Path]:
    """A migrated var dir with the ABCD KB, Django set up on it here, and a uvicorn on it."""
    from bench.bench_serving_http import http_server_start, http_var_dir

    os.environ.setdefault("TRELLIS_ARTIFACTS_DIR", str(REPO / "var" / "test-artifacts"))  # converted LM cached
    var_dir = http_var_dir(threads)
    os.environ["TRELLIS_KB_DIR"] = str(var_dir / "kb")
    os.environ["TRELLIS_VAR_DIR"] = str(var_dir)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "TRELLIS_TORCH_THREADS": str(threads)}
    subprocess.run(
        [sys.executable, "manage.py", "kb_demo"], cwd=REPO, env=env, check=True, capture_output=True, timeout=900
    )
    server = http_server_start(
        var_dir,
        threads,
        TRELLIS_KB_DIR=str(var_dir / "kb"),
        TRELLIS_CHAT_SOCKETS_PER_IP="1000",  # every bench socket comes from 127.0.0.1
        TRELLIS_CHAT_MESSAGES_PER_MINUTE="1000",
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    return server, var_dir


def conversations(count: int) -> list[tuple[str, str]]:
    """(public_id, token) of ``count`` new conversations."""
    from apps.chat.services.conversations import conversation_start

    made = [conversation_start(route=None, customer=None, origin=ORIGIN) for _ in range(count)]
    return [(str(c.public_id), token) for c, token in made]


def raw_prompt(question: str) -> list[dict[str, str]]:
    """The messages the pipeline gives the LM for ``question`` (no history)."""
    from django.conf import settings

    from apps.chat.services import prompting, reply
    from apps.chat.services.index import kb_search

    passages = kb_search(question, settings.TRELLIS_CHAT_PASSAGES)
    return prompting.build_messages(question, reply.safe_passages(passages))  # the pipeline's own helper


# --- clients -------------------------------------------------------------------------------


async def _open(ws_url: str, public_id: str, token: str) -> object:
    import websockets

    socket = await websockets.connect(f"{ws_url}/ws/chat/{public_id}/", origin=ORIGIN, max_size=2**22)
    await socket.send(json.dumps({"type": "hello", "token": token}))
    history = json.loads(await socket.recv())
    if history.get("type") != "history":
        raise RuntimeError(f"no history: {history}")
    return socket


async def socket_ask(socket: object, question: str) -> Reply:
    reply = Reply()
    sent = time.perf_counter()
    await socket.send(json.dumps({"type": "message", "text": question}))
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=300))
        now = time.perf_counter()
        if frame["type"] == "token":
            if reply.first_at is None:
                reply.first_at, reply.ttft_s = now, now - sent
            reply.last_at = now
            reply.pieces += 1
        elif frame["type"] == "error":
            reply.errors.append(frame["code"])
        elif frame["type"] in ("message_end", "handoff"):
            return reply


async def raw_ask(lm: object, messages: list[dict[str, str]], max_new_tokens: int) -> Reply:
    reply = Reply()
    started = time.perf_counter()
    async for _piece in lm.stream(messages, max_new_tokens=max_new_tokens, temperature=0.0):
        now = time.perf_counter()
        if reply.first_at is None:
            reply.first_at, reply.ttft_s = now, now - started
        reply.last_at = now
        reply.pieces += 1
    return reply


def _rate(replies: list[Reply]) -> float:
    """Aggregate pieces/s from the first piece of any reply to the last piece of any."""
    streamed = [r for r in replies if r.first_at is not None]
    if not streamed:
        return 0.0
    span = max(r.last_at for r in streamed) - min(r.first_at for r in streamed)
    return sum(r.pieces for r in streamed) / span if span > 0 else 0.0


# --- the runs ------------------------------------------------------------------------------


async def streams(server: object, lm: object, concurrency: int, rounds: int, max_new_tokens: int) -> dict:
    ws_url = server.url.replace("http://", "ws://")
    best_socket, best_raw, ttft_socket, ttft_raw, errors, pieces = 0.0, 0.0, [], [], [], []
    for round_no in range(rounds):
        questions = [QUESTIONS[(round_no * concurrency + i) % len(QUESTIONS)] for i in range(concurrency)]
        convs = await asyncio.to_thread(conversations, concurrency)
        sockets = [await _open(ws_url, pid, token) for pid, token in convs]
        got = await asyncio.gather(*(socket_ask(s, q) for s, q in zip(sockets, questions, strict=True)))
        for s in sockets:
            await s.close()
        prompts = [await asyncio.to_thread(raw_prompt, q) for q in questions]
        raw = await asyncio.gather(*(raw_ask(lm, p, max_new_tokens) for p in prompts))
        best_socket, best_raw = max(best_socket, _rate(got)), max(best_raw, _rate(raw))
        ttft_socket += [r.ttft_s for r in got if r.ttft_s is not None]
        ttft_raw += [r.ttft_s for r in raw if r.ttft_s is not None]
        errors += [e for r in got for e in r.errors]
        pieces += [r.pieces for r in got]
    return {
        "socket_rate": best_socket,
        "raw_rate": best_raw,
        "ttft_socket": ttft_socket,
        "ttft_raw": ttft_raw,
        "errors": errors,
        "streamed": sum(1 for p in pieces if p > 0),
        "asked": len(pieces),
    }


async def idle_plus_generating(server: object, idle: int, generating: int) -> dict:
    ws_url = server.url.replace("http://", "ws://")
    rss_before = _rss_mb(server.proc.pid)
    convs = await asyncio.to_thread(conversations, idle + generating)
    refused = 0
    idle_sockets = []
    for pid, token in convs[:idle]:
        try:
            idle_sockets.append(await _open(ws_url, pid, token))
        except Exception:  # a refused or failed socket is what this run counts
            refused += 1
    busy = [await _open(ws_url, pid, token) for pid, token in convs[idle:]]
    got = await asyncio.gather(*(socket_ask(s, QUESTIONS[i % len(QUESTIONS)]) for i, s in enumerate(busy)))
    rss_peak = _rss_mb(server.proc.pid)
    dropped = 0
    for s in idle_sockets:  # every idle socket must still be open and answering
        try:
            await s.send(json.dumps({"type": "typing"}))
            await asyncio.wait_for(s.ping(), timeout=30)
        except Exception:  # a dropped idle socket is what this run counts
            dropped += 1
    for s in [*idle_sockets, *busy]:
        await s.close()
    return {
        "idle_open": len(idle_sockets),
        "refused": refused,
        "dropped": dropped,
        "errors": [e for r in got for e in r.errors],
        "streamed": sum(1 for r in got if r.pieces),
        "ttft": [r.ttft_s for r in got if r.ttft_s is not None],
        "rss_before": rss_before,
        "rss_after": rss_peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes per concurrency (best rate kept)")
    parser.add_argument("--idle", type=int, default=100, help="idle sockets beside the 4 generating")
    args = parser.parse_args()
    threads = int(os.environ.get("TRELLIS_TORCH_THREADS", "1"))
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    server, _ = setup(threads)
    try:
        from django.conf import settings

        from ml.registry import default_registry  # torch loads here, after the server is up

        lm = default_registry().get("chat-lm")
        max_new = settings.TRELLIS_CHAT_MAX_REPLY_TOKENS
        asyncio.run(streams(server, lm, 1, 1, max_new))  # warm-up: both sides load their models
        results = {n: asyncio.run(streams(server, lm, n, args.rounds, max_new)) for n in (1, 4)}
        load = asyncio.run(idle_plus_generating(server, args.idle, 4))
    finally:
        server.stop()
    goals = {1: 1.0, 4: 2.0}
    print(f"\nchat socket vs raw ml stream (uvicorn, SQLite + in-memory layer, {threads} torch thread(s) per process)")
    load_after = os.getloadavg()[0]
    took = time.perf_counter() - started
    print(f"load average (1 min) before {load_before:.1f}, after {load_after:.1f}; bench took {took:.0f} s")
    print(
        "| customers | socket pieces/s | raw pieces/s | ratio (goal >= 0.9) | TTFT socket p50 / p95 s | "
        "TTFT raw p50 / p95 s | TTFT goal | replies streamed | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, r in results.items():
        ratio = r["socket_rate"] / r["raw_rate"] if r["raw_rate"] else float("nan")
        print(
            f"| {n} | {r['socket_rate']:.1f} | {r['raw_rate']:.1f} | {ratio:.2f} | "
            f"{_pct(r['ttft_socket'], 0.5):.2f} / {_pct(r['ttft_socket'], 0.95):.2f} | "
            f"{_pct(r['ttft_raw'], 0.5):.2f} / {_pct(r['ttft_raw'], 0.95):.2f} | <= {goals[n]:.0f} | "
            f"{r['streamed']}/{r['asked']} | {len(r['errors'])} |"
        )
    print(
        f"\n{args.idle} idle sockets + 4 generating on one process: {load['idle_open']} idle open, "
        f"{load['refused']} refused, {load['dropped']} dropped, {len(load['errors'])} error frames "
        f"{sorted(set(load['errors']))}, {load['streamed']}/4 replies streamed, TTFT p95 "
        f"{_pct(load['ttft'], 0.95):.2f} s; server RSS {load['rss_before']:.0f} MB -> {load['rss_after']:.0f} MB"
    )
    ratio_ok = all(r["raw_rate"] and r["socket_rate"] / r["raw_rate"] >= 0.9 for r in results.values())
    ttft_ok = all(_pct(r["ttft_socket"], 0.95) <= goals[n] for n, r in results.items())
    print(f"goals met: ratio {ratio_ok}, socket TTFT p95 {ttft_ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
