"""Continuous batching on whatever device this process gets (CUDA where there is one).

Aggregate generated tokens/s with 1, 4, 8 and 32 concurrent greedy streams through
``ChatLM.stream`` (the shared decode loop), per-stream time to first piece, and whether each
batched greedy reply equals the same prompt's solo reply.

    python bench/bench_decode_device.py                      # the bundled chat LM
    python bench/bench_decode_device.py --model DIR --random-weights

``--random-weights`` builds the model from ``DIR/config.json`` with seeded random weights:
the same architecture and the same compute per token, for a machine the weights cannot be
copied to. Its replies are noise, so use it for speed and batched-vs-solo equality only.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from ml import devices  # noqa: E402
from ml.compute_lane import ComputeLane  # noqa: E402
from ml.generate import ChatLM, GenerationGate, GenerationStats  # noqa: E402

TOPICS = ["refund policy", "shipping to Canada", "a broken zipper", "gift cards", "store hours", "password reset",
          "order tracking", "size exchange", "damaged parcel", "loyalty points", "student discount", "returns label"]


def prompt(i: int) -> list[dict[str, str]]:
    topic = TOPICS[i % len(TOPICS)]
    return [{"role": "user", "content": f"Question {i}: tell me about {topic}, briefly please."}]


def build(folder: Path, random_weights: bool, lane: ComputeLane, rows: int) -> ChatLM:
    info = devices.current()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if random_weights:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=info.dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=info.dtype)
    model = model.to(info.device).eval()
    gate = GenerationGate(max_concurrent=rows, max_waiting=rows)
    return ChatLM(model, tokenizer, version="bench", info=info, lane=lane, gate=gate)


async def run(lm: ChatLM, prompts: list[int], tokens: int) -> tuple[list[str], list[GenerationStats], float]:
    stats = [GenerationStats() for _ in prompts]
    started = time.perf_counter()
    texts = await asyncio.gather(*(lm.complete(prompt(i), max_new_tokens=tokens, stats=s)
                                   for i, s in zip(prompts, stats, strict=True)))
    return list(texts), stats, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a causal-LM folder (default: the bundled chat LM)")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--streams", default="1,4,8,32")
    args = parser.parse_args()
    if args.model is None:
        from ml.registry import default_registry

        args.model = Path(default_registry().get("chat-lm").model.name_or_path)
    counts = [int(n) for n in args.streams.split(",")]
    lane = ComputeLane("bench-decode")
    lm = build(args.model, args.random_weights, lane, max(counts))
    info = lm.info
    name = torch.cuda.get_device_name() if info.device == "cuda" else info.device
    print(f"device {name}, dtype {str(info.dtype).removeprefix('torch.')}, {args.tokens} new tokens, greedy")
    asyncio.run(run(lm, [0, 1], 8))  # warm-up: kernels, allocator
    solo_texts, solo_tok_s = {}, []
    for i in range(8):
        texts, stats, wall = asyncio.run(run(lm, [i], args.tokens))
        solo_texts[i] = texts[0]
        solo_tok_s.append(stats[0].tokens / wall)
    base = statistics.median(solo_tok_s)
    print(f"{'streams':>8} {'tok/s':>9} {'x 1 stream':>10} {'first piece p95 s':>18} {'equal to solo':>14}")
    for n in counts:
        texts, stats, wall = asyncio.run(run(lm, list(range(n)), args.tokens))
        rate = sum(s.tokens for s in stats) / wall
        firsts = sorted(s.first_piece_s or wall for s in stats)
        p95 = firsts[min(len(firsts) - 1, round(0.95 * (len(firsts) - 1)))]
        same = [texts[i] == solo_texts[i] for i in range(min(n, 8))]
        print(f"{n:>8} {rate:>9.1f} {rate / base:>10.2f} {p95:>18.3f} {sum(same):>7}/{len(same)}")
    lane.shutdown()


if __name__ == "__main__":
    main()
