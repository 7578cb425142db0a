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

and over HTTP (the inference API on live uvicorn servers: ``bench/bench_serving_http.py``;
``--skip-http`` leaves it out, ``--http-only`` runs only it, ``--production`` runs its servers
on PostgreSQL + Redis): chat streamed over HTTP vs in-process (goal >= 0.9x), and 16
concurrent single-text ``/v1/embeddings`` clients vs a server without batching (goal >= 3x)
and vs in-process batched ``embed`` (goal >= 0.7x).

    TRELLIS_TORCH_THREADS=2 python bench/bench_serving.py [--max-new-tokens 64] [--rounds 2] [--numerics]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench import bench_serving_http  # noqa: E402
from bench.bench_serving_http import QUESTIONS, print_table  # noqa: E402
from ml import devices  # noqa: E402
from ml.compute_lane import default_lane  # noqa: E402
from ml.generate import ChatLM, GenerationStats  # noqa: E402
from ml.registry import default_registry  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOPICS = ["a dragon who bakes bread", "a robot learning to paint", "a lighthouse keeper's cat", "a lost umbrella",
          "a city under the sea", "a clockmaker's apprentice", "a snowman in summer", "a shy volcano"]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="repetitions of each measurement (median)")
    parser.add_argument("--numerics", action="store_true", help="also measure padding numerics (slow)")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--skip-http", action="store_true", help="leave out the HTTP part (starts uvicorn twice)")
    parser.add_argument("--http-only", action="store_true", help="only the HTTP part")
    bench_serving_http.add_arguments(parser)
    args = parser.parse_args()
    if args.http_only:
        return 0 if bench_serving_http.run(args) else 1

    info = devices.current()
    registry = default_registry()
    lm, embedder = registry.get("chat-lm"), registry.get("embedder")
    print(f"\nserving in-process: {lm.version} on {info.device} ({str(info.dtype).removeprefix('torch.')}), "
          f"{info.threads} torch thread(s), gate {lm.gate.max_concurrent} rows, greedy, "
          f"{args.max_new_tokens} new tokens a stream, {args.rounds} round(s); load "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    if not args.skip_generation:
        print_table(bench_generation(lm, args.max_new_tokens, args.rounds))
    print_table(bench_embeds(embedder, max(3, args.rounds * 3)))
    if args.numerics:
        print_table(bench_numerics(lm, args.max_new_tokens))
    if not args.skip_http:
        bench_serving_http.run(args)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
