"""Explanation throughput: integrated gradients on a batch of 16 texts vs one text per call.

Same classifier, same texts (financial tweets with their links removed, or generated
sentences when the dataset is absent), rounds interleaved so that load from other processes
hits every method alike. Baseline: integrated gradients one text per call (what a page asking
for one explanation at a time costs). Occlusion rows, on the same transformer, show what the
gradient-free method costs per explanation.

The classifier is MiniLM with a seeded, untrained 3-label head unless ``--artifact`` names a
classifier artifact directory: speed does not depend on the head's weights.

    TRELLIS_TORCH_THREADS=2 python bench/bench_explain.py [--texts 16] [--steps 32] [--rounds 3]
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
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from bench.datasets import SENTIMENT_DIR  # noqa: E402

DATASET = SENTIMENT_DIR / "sent_valid.csv"
URL = re.compile(r"https?://\S+")


def load_texts(n: int, seed: int = 0) -> tuple[list[str], str]:
    """``n`` real tweets (links removed, 6-25 words) or generated sentences; and their source."""
    from ml.explain import words_of

    rng = random.Random(seed)  # noqa: S311 - sampling, not a secret
    if DATASET.is_file():
        with open(DATASET, encoding="utf-8", newline="") as fh:
            texts = [URL.sub("", row["text"]).strip() for row in csv.DictReader(fh)]
        texts = [t for t in texts if 6 <= len(words_of(t)) <= 25]
        rng.shuffle(texts)
        return texts[:n], f"twitter_financial_news_sentiment ({DATASET.name})"
    companies = ["Apple", "the bank", "Tesla", "the retailer", "Boeing", "the miner"]
    events = ["shares jump after strong earnings", "cuts its outlook for the year", "beats revenue estimates",
              "faces a regulatory probe", "announces a buyback", "misses profit forecasts"]
    texts = [f"{rng.choice(companies)} {rng.choice(events)} on {rng.choice(['Monday', 'Friday'])}" for _ in range(n)]
    return texts, "generated"


def build_classifier(artifact: str | None) -> Any:
    from ml import devices
    from ml.sequence_classifier import SequenceClassifier

    if artifact:
        from ml.registry import default_registry

        return default_registry().load_artifact(artifact)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ml.defaults import embedder_weights

    info = devices.current()
    torch.manual_seed(0)
    labels = ["bearish", "bullish", "neutral"]
    weights = str(embedder_weights())  # the bundled package's local folder, not a hub id
    model = AutoModelForSequenceClassification.from_pretrained(weights, num_labels=len(labels))  # nosec B615
    model.to(info.device, dtype=info.dtype)
    tokenizer = AutoTokenizer.from_pretrained(weights)  # nosec B615  # local folder
    return SequenceClassifier(model, tokenizer, labels, device_info=info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=16, help="texts explained per round")
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradients steps")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--artifact", help="a classifier artifact directory instead of MiniLM + a seeded head")
    args = parser.parse_args()

    from ml import devices
    from ml import explain as ex

    info = devices.current()
    texts, source = load_texts(args.texts)
    classifier = build_classifier(args.artifact)
    if ex.method_for(classifier) != ex.INTEGRATED_GRADIENTS:
        raise SystemExit(f"{classifier!r} has no gradients (int8?): integrated gradients cannot run on it")

    def batched(method: str) -> Callable[[], list[ex.Explanation]]:
        return lambda: ex.explain(classifier, texts, steps=args.steps, method=method)

    def one_by_one(method: str) -> Callable[[], list[ex.Explanation]]:
        return lambda: [e for t in texts for e in ex.explain(classifier, [t], steps=args.steps, method=method)]

    runs = {
        "IG one by one": one_by_one(ex.INTEGRATED_GRADIENTS),
        f"IG batch of {len(texts)}": batched(ex.INTEGRATED_GRADIENTS),
        "occlusion one by one": one_by_one(ex.OCCLUSION),
        f"occlusion batch of {len(texts)}": batched(ex.OCCLUSION),
    }
    # Same attributions first (also warms every path up): batching must not change the answer.
    solo, together = runs["IG one by one"](), runs[f"IG batch of {len(texts)}"]()
    max_diff = max(abs(a.attribution - b.attribution)
                   for x, y in zip(solo, together, strict=True) for a, b in zip(x.tokens, y.tokens, strict=True))
    mean_delta = statistics.mean(abs(e.convergence_delta or 0.0) for e in together)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            rates[name].append(len(texts) / (time.perf_counter() - started))

    base = max(rates["IG one by one"])
    words = statistics.mean(len(ex.words_of(t)) for t in texts)
    print(f"\nexplanations: {len(texts)} texts from {source} ({words:.1f} words on average), {args.steps} IG steps, "
          f"device {info.device} ({str(info.dtype).removeprefix('torch.')}), {info.threads} torch thread(s), "
          f"best of {args.rounds} interleaved rounds")
    trivial = "" if args.artifact else " (untrained head: near 0 by construction)"
    print(f"max |batched - one by one| attribution = {max_diff:.2e}; "
          f"mean |IG convergence delta| = {mean_delta:.4f}{trivial}")
    print(f"{'method':<24}{'best expl/s':>12}{'median':>10}{'ratio':>8}")
    for name, values in rates.items():
        print(f"{name:<24}{max(values):>12.2f}{statistics.median(values):>10.2f}{max(values) / base:>7.2f}x")


if __name__ == "__main__":
    main()
