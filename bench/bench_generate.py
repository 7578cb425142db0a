"""Chat LM: streamed generation vs raw ``model.generate`` on the same prompts (greedy).

Measures what the streaming path (chat template, gate, the continuous-batching decode loop
with one lane job per step, incremental detokenising, stop-string hold-back) costs over
calling ``generate`` directly, one stream at a time: tokens/s of each, their ratio (goal:
stream >= 0.9x raw), and the time to the first streamed piece (p50/p95). Raw and streamed
runs alternate per prompt so that load from other processes hits both alike.

    TRELLIS_TORCH_THREADS=2 python bench/bench_generate.py [--max-new-tokens 64] [--rounds 1]
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

import torch  # noqa: E402

from ml import devices  # noqa: E402
from ml.generate import ChatLM, GenerationStats  # noqa: E402
from ml.registry import default_registry  # noqa: E402

PROMPTS = [
    "Where is my order? I placed it last week and it has not arrived.",
    "How do I reset my password?",
    "Write a short paragraph about the history of bread.",
    "My card was declined when I tried to pay. What should I do?",
    "Explain what a refund policy is in simple words.",
    "Give me three tips for writing a good customer support reply.",
    "What is the difference between a stock and a bond?",
    "Can I change the delivery address of an order that has shipped?",
]


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def raw_generate(lm: ChatLM, prompt: str, max_new_tokens: int) -> tuple[int, float, str]:
    """Tokens generated, seconds and text of one direct ``model.generate`` call.

    It runs on the process's compute lane, as the server's own work does: on CPU a second
    thread computing in the same process brings a second OpenMP team that slows both.
    """
    ids = torch.tensor([lm.prompt_ids(_messages(prompt), max_new_tokens)], device=lm.info.device)

    def generate() -> torch.Tensor:
        with devices.inference_context(lm.info):
            return lm.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=lm.tokenizer.pad_token_id,
            )

    started = time.perf_counter()
    out = lm.lane.run(generate).result()
    seconds = time.perf_counter() - started
    new = out[0, ids.shape[1] :]
    return int(new.shape[0]), seconds, lm.tokenizer.decode(new, skip_special_tokens=True)


async def streamed(lm: ChatLM, prompt: str, max_new_tokens: int) -> tuple[GenerationStats, float, str]:
    """Stats, seconds and text of one ``stream`` call consumed to the end."""
    stats = GenerationStats()
    started = time.perf_counter()
    pieces = [piece async for piece in lm.stream(_messages(prompt), max_new_tokens=max_new_tokens, stats=stats)]
    return stats, time.perf_counter() - started, "".join(pieces)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="passes over the 8 prompts")
    args = parser.parse_args()

    info = devices.current()  # caps torch threads from TRELLIS_TORCH_THREADS
    started = time.perf_counter()
    lm = default_registry().get("chat-lm")
    load_s = time.perf_counter() - started
    raw_generate(lm, "Hello!", 8)  # warm-up: first call pays one-off allocations
    asyncio.run(streamed(lm, "Hello!", 8))

    raw_tokens = raw_seconds = stream_tokens = stream_seconds = 0.0
    firsts: list[float] = []
    mismatches = 0
    for round_no in range(args.rounds):
        for i, prompt in enumerate(PROMPTS):
            order = ("raw", "stream") if (i + round_no) % 2 == 0 else ("stream", "raw")
            for which in order:
                if which == "raw":
                    n, seconds, raw_text = raw_generate(lm, prompt, args.max_new_tokens)
                    raw_tokens, raw_seconds = raw_tokens + n, raw_seconds + seconds
                else:
                    stats, seconds, text = asyncio.run(streamed(lm, prompt, args.max_new_tokens))
                    stream_tokens, stream_seconds = stream_tokens + stats.tokens, stream_seconds + seconds
                    if stats.first_piece_s is not None:
                        firsts.append(stats.first_piece_s)
            mismatches += text != raw_text

    raw_tps, stream_tps = raw_tokens / raw_seconds, stream_tokens / stream_seconds
    ratio = stream_tps / raw_tps
    runs = len(PROMPTS) * args.rounds
    print(
        f"\nchat LM generation: {lm.version} on {info.device} ({str(info.dtype).removeprefix('torch.')}), "
        f"{info.threads} torch thread(s), {runs} prompts x max {args.max_new_tokens} new tokens, greedy; "
        f"load {load_s:.1f} s"
    )
    rows = [
        ("measure", "raw generate", "stream", "stream/raw"),
        ("tokens generated", f"{raw_tokens:.0f}", f"{stream_tokens:.0f}", ""),
        ("seconds", f"{raw_seconds:.2f}", f"{stream_seconds:.2f}", ""),
        ("tokens/s", f"{raw_tps:.1f}", f"{stream_tps:.1f}", f"{ratio:.2f}x (goal >= 0.9x)"),
        ("first piece p50", "-", f"{statistics.median(firsts):.3f} s", ""),
        ("first piece p95", "-", f"{_pct(firsts, 0.95):.3f} s", ""),
        ("texts differing", "", f"{mismatches}/{runs}", ""),
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    for n, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
