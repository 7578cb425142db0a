"""Embedding service overhead: ``Embedder.embed`` vs raw ``SentenceTransformer.encode``.

Both run on the same model object, the same sentences (BANKING77 customer queries, or
generated ones when the dataset is absent) and the same batch size (64); rounds alternate
between the two so that load from other processes hits both alike. Goal: service >= 0.9x.
On CPU the service runs forward passes of ``CPU_MICRO_BATCH`` (16) texts whatever batch is
asked for; a third row, raw encode at that batch, shows how much of any gap that explains.

    TRELLIS_TORCH_THREADS=1 python bench/bench_embed.py [--n 512] [--rounds 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import csv  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from bench.datasets import BANKING77_DIR  # noqa: E402

DATASET = BANKING77_DIR / "train.csv"


def load_sentences(n: int, seed: int = 0) -> tuple[list[str], str]:
    """``n`` real sentences (shuffled BANKING77 queries) or generated ones; and their source."""
    rng = random.Random(seed)
    if DATASET.is_file():
        with open(DATASET, encoding="utf-8", newline="") as fh:
            texts = [row["text"] for row in csv.DictReader(fh)]
        rng.shuffle(texts)
        return texts[:n], f"banking77 ({DATASET.name})"
    subjects = ["my card", "the transfer", "my refund", "the app", "my account", "a payment", "the exchange rate"]
    problems = ["is not working", "was declined", "has not arrived", "shows the wrong amount", "is pending"]
    tails = ["", " since yesterday", " and I need help urgently", " after I updated my phone", " again"]
    texts = [f"Why {rng.choice(subjects)} {rng.choice(problems)}{rng.choice(tails)}?" for _ in range(n)]
    return texts, "generated"


def measure(run: Callable[[], object], count: int, rounds: list[float]) -> None:
    started = time.perf_counter()
    run()
    rounds.append(count / (time.perf_counter() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="sentences per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import numpy as np

    from ml import devices
    from ml.defaults import embedder_weights
    from ml.embeddings import Embedder, forward_batch_size

    info = devices.current()
    texts, source = load_sentences(args.n)
    embedder = Embedder(embedder_weights())
    raw = embedder.model
    micro = forward_batch_size(args.batch_size, info)

    def service() -> np.ndarray:
        return embedder.embed(texts, batch_size=args.batch_size)

    def encode(batch_size: int) -> Callable[[], np.ndarray]:
        return lambda: raw.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)

    # Same numbers first: the comparison is only fair if both compute the same thing.
    max_diff = float(np.abs(service() - encode(args.batch_size)()).max())  # also warms both paths up
    runs = {f"raw encode b{args.batch_size}": encode(args.batch_size), f"service embed b{args.batch_size}": service}
    if micro != args.batch_size:  # reference: how much the CPU micro-batch alone explains
        runs[f"raw encode b{micro}"] = encode(micro)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            measure(run, len(texts), rates[name])

    base = max(rates[f"raw encode b{args.batch_size}"])
    print(
        f"\nembeddings: {len(texts)} sentences from {source}, batch {args.batch_size}, "
        f"device {info.device}, {info.threads} torch thread(s), service forward passes of {micro}, "
        f"best of {args.rounds} interleaved rounds"
    )
    print(f"max |service - raw| = {max_diff:.2e}")
    print(f"{'method':<20}{'best sent/s':>12}{'median':>10}{'ratio':>8}")
    for name, values in rates.items():
        print(f"{name:<20}{max(values):>12.1f}{statistics.median(values):>10.1f}{max(values) / base:>7.2f}x")
    ratio = max(rates[f"service embed b{args.batch_size}"]) / base
    print(f"goal service >= 0.90x raw: {'met' if ratio >= 0.9 else 'NOT met'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
