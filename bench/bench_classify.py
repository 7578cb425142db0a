"""Classifier serving speed: batched vs one at a time, and int8 vs fp32 (speed and macro-F1).

The transformer classifier is either loaded from ``--artifact DIR`` (an hf-/lora-classifier
artifact) or, by default, fine-tuned here for one epoch on ~1000 rows of
twitter_financial_news_sentiment (plain torch loop, ~1-2 min on one core) so that macro-F1
means something. All measurements run on the same held-out rows of ``sent_valid.csv``.
Goals: batched (64) >= 5x one at a time; int8 >= 2x fp32 at batch 64 with macro-F1
within 1 point. On CPU it also times bf16 autocast (``TRELLIS_CPU_BF16=1`` in serving),
which on CPUs with AMX is the faster reduced-precision path.

    TRELLIS_TORCH_THREADS=1 python bench/bench_classify.py [--train-rows 1000] [--eval-rows 512]
    TRELLIS_TORCH_THREADS=1 python bench/bench_classify.py --artifact var/artifacts/sentiment/v3
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from bench.datasets import SENTIMENT_DIR as DATASET  # noqa: E402
from bench.datasets import SENTIMENT_NAMES as LABELS  # noqa: E402
from bench.datasets import read_labelled_csv as read_rows  # noqa: E402


def train_quick(rows: list[tuple[str, str]], labels: list[str], max_length: int, seed: int = 0) -> Any:
    """One epoch of full fine-tuning of MiniLM + a new head (batch 16, AdamW 1e-4).

    Class-weighted loss: neutral is 65% of the data, and one unweighted epoch mostly
    learns to answer "neutral", which would make macro-F1 meaningless.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ml.defaults import embedder_weights
    from ml.sequence_classifier import SequenceClassifier

    torch.manual_seed(seed)
    base = str(embedder_weights())
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    y_all = torch.tensor([labels.index(y) for _, y in rows])
    counts = torch.bincount(y_all, minlength=len(labels)).float()
    loss_fn = torch.nn.CrossEntropyLoss(weight=len(rows) / (len(labels) * counts))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    model.train()
    for start in range(0, len(order), 16):
        idx = order[start : start + 16]
        enc = tokenizer(
            [rows[i][0] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        loss = loss_fn(model(**enc).logits, y_all[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return SequenceClassifier(model.eval(), tokenizer, labels, max_length=max_length)


def save_artifact(clf: Any, directory: Path) -> None:
    """Writes ``clf`` as an ``hf-classifier`` artifact (weights, tokenizer, manifest)."""
    from ml.artifacts import Manifest, new_version_id, write_manifest

    clf.model.save_pretrained(directory)
    clf.tokenizer.save_pretrained(directory)
    write_manifest(
        directory,
        Manifest(
            role="sentiment",
            kind="hf-classifier",
            version=new_version_id("sentiment"),
            task="text-classification",
            labels=clf.labels,
            extra={"max_length": clf.max_length},
        ),
    )


def rate(run: Callable[[], object], count: int, rounds: int) -> list[float]:
    """Items per second of ``run`` over ``rounds`` timed calls."""
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, help="hf-/lora-classifier artifact dir (skips training)")
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--eval-rows", type=int, default=0, help="rows scored for macro-F1 (0: all 2,388)")
    parser.add_argument("--time-rows", type=int, default=512, help="rows per timed batched pass")
    parser.add_argument("--save-artifact", type=Path, help="also save the model trained here as an hf-classifier")
    parser.add_argument("--single-rows", type=int, default=128, help="rows timed one at a time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()

    from ml import devices
    from ml.classify import CPU_MICRO_BATCH
    from ml.metrics import classification_report

    info = devices.current()
    rng = random.Random(0)
    eval_rows = read_rows(DATASET / "sent_valid.csv")
    rng.shuffle(eval_rows)
    eval_rows = eval_rows[: args.eval_rows or None]
    texts, gold = [t for t, _ in eval_rows], [y for _, y in eval_rows]

    started = time.perf_counter()
    if args.artifact:
        from ml.artifacts import read_manifest
        from ml.registry import Registry
        from ml.sequence_classifier import load_sequence_classifier

        os.environ["TRELLIS_INT8"] = "0"  # load fp32; the int8 copy is made below
        fp32 = load_sequence_classifier(args.artifact, read_manifest(args.artifact), Registry())
        origin = f"artifact {args.artifact}"
    else:
        train_rows = read_rows(DATASET / "sent_train.csv")
        rng.shuffle(train_rows)
        fp32 = train_quick(train_rows[: args.train_rows], sorted(set(LABELS.values())), args.max_length)
        origin = f"fine-tuned here: 1 epoch on {args.train_rows} rows of sent_train.csv"
        if args.save_artifact:
            save_artifact(fp32, args.save_artifact)
    prepare_s = time.perf_counter() - started

    import dataclasses

    import torch

    from ml.sequence_classifier import SequenceClassifier

    base_name = "fp32" if not info.is_gpu else str(info.dtype).removeprefix("torch.")
    variants: dict[str, SequenceClassifier] = {base_name: fp32}
    if not info.is_gpu:
        # Explicit precisions, whatever TRELLIS_CPU_BF16 says: fp32, int8 copy, bf16 autocast
        # (AMX/AVX512-BF16 matmuls; the devices opt-in) on the very same weights.
        cpu = dataclasses.replace(info, autocast_dtype=None)
        fp32.device_info = cpu
        variants["int8"] = fp32.quantized()
        variants["bf16 autocast"] = SequenceClassifier(
            fp32.model,
            fp32.tokenizer,
            fp32.labels,
            max_length=fp32.max_length,
            device_info=dataclasses.replace(cpu, autocast_dtype=torch.bfloat16),
        )

    predicted = {name: [p.label for p in clf.predict(texts, batch_size=64)] for name, clf in variants.items()}
    f1 = {
        name: classification_report(gold, labels, labels=fp32.labels)["macro_f1"] for name, labels in predicted.items()
    }
    single, timed = texts[: args.single_rows], texts[: args.time_rows]
    singles = [base_name] + (["bf16 autocast"] if "bf16 autocast" in variants else [])
    rates: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # interleaved, so background load hits each alike
        for name, clf in variants.items():
            rates.setdefault(f"{name} batch 64", []).extend(
                rate(lambda c=clf: c.predict(timed, batch_size=64), len(timed), 1)
            )
            if name in singles:
                rates.setdefault(f"{name} one at a time", []).extend(
                    rate(lambda c=clf: [c.predict([t]) for t in single], len(single), 1)
                )

    def best(key: str) -> float:
        return max(rates[key])

    rows = [
        (f"{base_name} one at a time", base_name, None),
        (f"{base_name} batch 64", base_name, f"{base_name} one at a time"),
    ]
    if not info.is_gpu:
        rows += [
            ("int8 batch 64", "int8", "fp32 batch 64"),
            ("bf16 autocast one at a time", "bf16 autocast", "fp32 one at a time"),
            ("bf16 autocast batch 64", "bf16 autocast", "bf16 autocast one at a time"),
        ]
    micro = 64 if info.is_gpu else min(64, CPU_MICRO_BATCH)
    print(
        f"\nclassifier: {origin} ({prepare_s:.0f} s); macro-F1 on {len(texts)} rows of sent_valid.csv, "
        f"speed on {len(timed)} (batched) and {len(single)} (one at a time); max_length {fp32.max_length}; "
        f"device {info.device}, {info.threads} torch thread(s), forward passes of {micro}; "
        f"int8 engine {torch.backends.quantized.engine}; best of {args.rounds} interleaved rounds"
    )
    for name in variants:
        if name != base_name:
            agree = sum(a == b for a, b in zip(predicted[base_name], predicted[name], strict=True))
            print(f"{name} and {base_name} agree on {agree}/{len(texts)} labels ({100 * agree / len(texts):.1f}%)")
    head = f"{'method':<29}{'best texts/s':>13}{'median':>9}{'macro-F1':>10}{'ratio':>8}  baseline"
    print(head)
    print("-" * len(head))
    for key, name, baseline in rows:
        ratio = best(key) / best(baseline) if baseline else 1.0
        print(
            f"{key:<29}{best(key):>13.1f}{statistics.median(rates[key]):>9.1f}{f1[name]:>10.3f}"
            f"{ratio:>7.2f}x  {baseline or '-'}"
        )
    batch_ratio = best(f"{base_name} batch 64") / best(f"{base_name} one at a time")
    print(f"goal batched >= 5x one at a time: {'met' if batch_ratio >= 5 else 'NOT met'} ({batch_ratio:.2f}x)")
    if not info.is_gpu:
        int8_ratio = best("int8 batch 64") / best("fp32 batch 64")
        delta = 100 * (f1["int8"] - f1["fp32"])
        print(f"goal int8 >= 2x fp32: {'met' if int8_ratio >= 2 else 'NOT met'} ({int8_ratio:.2f}x)")
        print(f"goal int8 macro-F1 within 1 point: {'met' if abs(delta) <= 1 else 'NOT met'} ({delta:+.2f} points)")
        bf16_ratio = best("bf16 autocast batch 64") / best("fp32 batch 64")
        bf16_delta = 100 * (f1["bf16 autocast"] - f1["fp32"])
        print(f"(bf16 autocast vs fp32 at batch 64: {bf16_ratio:.2f}x, macro-F1 {bf16_delta:+.2f} points)")


if __name__ == "__main__":
    main()
