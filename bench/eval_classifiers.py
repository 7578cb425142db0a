"""Accuracy of the fine-tuned classifiers on public benchmarks, against their goals.

    python bench/eval_classifiers.py banking77 [--method full|lora] [--epochs N]
        trains on BANKING77 train (10,003 rows, 77 intents), reports test accuracy
        (3,080 rows); goal >= 0.92.
    python bench/eval_classifiers.py sentiment [--method full|lora] [--epochs N]
        trains on twitter_financial_news_sentiment train (9,543 rows), reports weighted F1
        on its valid split (2,388 rows; the dataset has no test split); goal >= 0.88.

Full runs take tens of minutes on a CPU; ``--max-train-rows 300 --epochs 1`` is a smoke
test of the pipeline only (its scores mean nothing). The dev split for early stopping is
carved from train; the reported split is never seen in training.

The baseline is measured in the same run: the frozen probe (``bench.probe``: logistic
regression on the base encoder's embeddings, trained on all the train rows the fine-tune saw,
dev rows included) scored on the same evaluation rows; ``--no-probe`` skips it.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

from bench.datasets import DATASETS  # noqa: E402
from bench.datasets import read_labelled_csv as read_rows  # noqa: E402
from bench.probe import frozen_probe  # noqa: E402


@dataclass(frozen=True)
class Benchmark:
    """Where a benchmark's data is and what it must reach."""

    role: str
    train: Path
    test: Path
    label_column: str
    metric: str
    goal: float
    epochs: int  # default epochs of a full run (early stopping usually ends sooner)


BENCHMARKS = {
    "banking77": Benchmark("intent", DATASETS / "banking77" / "train.csv",
                           DATASETS / "banking77" / "test.csv", "category", "accuracy", 0.92, 8),
    "sentiment": Benchmark("sentiment", DATASETS / "twitter_financial_news_sentiment" / "sent_train.csv",
                           DATASETS / "twitter_financial_news_sentiment" / "sent_valid.csv",
                           "label", "weighted_f1", 0.88, 4),
}


def _print_event(event: Any) -> None:
    """Prints ``ml.finetune.events`` of a run (typed events; fewshot may still send dicts)."""
    event = event.to_dict() if hasattr(event, "to_dict") else event
    if event["event"] == "start":
        print(f"split {event['split']}, {len(event['labels'])} labels, {event['total_steps']} steps "
              f"on {event['device']}", flush=True)
    elif event["event"] == "step" and event["step"] % 50 == 0:
        print(f"  step {event['step']}/{event['total_steps']} loss {event['loss']:.4f}", flush=True)
    elif event["event"] == "epoch" and event.get("dev"):
        print(f"epoch {event['epoch']}: train_loss {event['train_loss']:.4f} dev macro_f1 "
              f"{event['dev']['macro_f1']:.4f} ({event['train_samples'] / event['train_seconds']:.1f} "
              "samples/s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS))
    parser.add_argument("--method", choices=["full", "lora"], default="full")
    parser.add_argument("--epochs", type=int, default=None, help="default: 8 banking77, 4 sentiment")
    parser.add_argument("--lr", type=float, default=None, help="default: 5e-5 full, 5e-4 LoRA")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--max-train-rows", type=int, default=None, help="cap of the train split")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--class-weighting", choices=["balanced", "none"], default="balanced",
                        help="balanced helps rare classes (macro-F1); none favours weighted F1/accuracy")
    parser.add_argument("--out", default=None, help="keep the artifact here (default: temporary)")
    parser.add_argument("--base-model", default=None, help="encoder folder (default: bundled MiniLM)")
    parser.add_argument("--pooling", choices=["mean", "cls"], default="mean",
                        help="the head reads the mean of the token states (default) or BERT's [CLS] pooler")
    parser.add_argument("--head-init", choices=["probe", "random"], default=None,
                        help="start the head as a frozen probe or from random weights (default: the trainer's)")
    parser.add_argument("--head-lr-multiplier", type=float, default=None, help="default: the trainer's")
    parser.add_argument("--label-smoothing", type=float, default=None, help="default: the trainer's")
    parser.add_argument("--wise-alpha", type=float, default=None,
                        help="WiSE-FT: average the encoder with its base at this share, refit the head (default: off)")
    parser.add_argument("--dev-fraction", type=float, default=0.1,
                        help="share of train kept for early stopping (0: train on every row for --epochs)")
    parser.add_argument("--no-probe", action="store_true", help="skip the frozen-probe baseline")
    ns = parser.parse_args()

    from ml import devices
    from ml.defaults import embedder_weights
    from ml.finetune.classification import ClassifierTrainArgs, train_classifier

    bench = BENCHMARKS[ns.benchmark]
    train, test = read_rows(bench.train, bench.label_column), read_rows(bench.test, bench.label_column)
    info = devices.current()
    print(f"{ns.benchmark}: {len(train)} train rows, {len(test)} evaluation rows, method {ns.method}, "
          f"device {info.device}, {info.threads} torch thread(s)", flush=True)
    base = Path(ns.base_model) if ns.base_model else Path(embedder_weights())
    baseline = None
    if not ns.no_probe:
        probe_train = train[: ns.max_train_rows] if ns.max_train_rows else train
        baseline = frozen_probe(base, probe_train, test)
        print(f"frozen probe ({base.parent.name if base.name == 'model' else base.name}): {bench.metric} "
              f"{baseline[bench.metric]:.4f} ({baseline['seconds']:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(ns.out) if ns.out else Path(tmp) / "model"
        args = ClassifierTrainArgs(
            data=train, test_data=test, role=bench.role, output_dir=out, method=ns.method,
            epochs=ns.epochs or bench.epochs, learning_rate=ns.lr, batch_size=ns.batch_size,
            max_length=ns.max_length, max_train_rows=ns.max_train_rows, seed=ns.seed,
            dev_fraction=ns.dev_fraction, max_bytes=None, class_weighting=ns.class_weighting, pooling=ns.pooling,
            **({"head_init": ns.head_init} if ns.head_init else {}),
            **({"head_lr_multiplier": ns.head_lr_multiplier} if ns.head_lr_multiplier else {}),
            **({"label_smoothing": ns.label_smoothing} if ns.label_smoothing is not None else {}),
            **({"wise_alpha": ns.wise_alpha} if ns.wise_alpha is not None else {}),
            **({"base_model": str(base)} if ns.base_model else {}))
        started = time.perf_counter()
        result = train_classifier(args, progress=_print_event)
        elapsed = time.perf_counter() - started
    metrics = result.manifest.metrics
    score = metrics[bench.metric]
    verdict = "meets" if score >= bench.goal else "below"
    print(json.dumps({k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1")}, indent=2))
    pooling = result.manifest.extra["pooling"]
    recipe = (f"{pooling} pooling, {result.manifest.extra['head_init']} head, head lr x{args.head_lr_multiplier:g}, "
              f"label smoothing {args.label_smoothing:g}, WiSE-FT alpha {args.wise_alpha:g}")
    print(f"{ns.benchmark} {ns.method} ({recipe}): {bench.metric} {score:.4f} on {len(result.test_rows)} rows "
          f"({verdict} the goal {bench.goal}); epochs run {result.manifest.extra['epochs_run']}, "
          f"best {result.manifest.extra['best_epoch']}, {elapsed:.0f} s"
          + (f"; smoke run on {ns.max_train_rows} train rows" if ns.max_train_rows else ""))
    averaging = result.manifest.extra.get("weight_averaging")
    if averaging and averaging.get("fine_tuned_held_out"):
        before = averaging["fine_tuned_held_out"][bench.metric]
        print(f"WiSE-FT alpha {averaging['alpha']:g}: {bench.metric} {before:.4f} fine-tuned -> {score:.4f} averaged "
              f"(dev macro-F1 {averaging['dev_macro_f1_fine_tuned']:.4f} -> {averaging['dev_macro_f1_averaged']:.4f})")
    if baseline is not None:
        margin = score - baseline[bench.metric]
        print(f"fine-tuned vs frozen probe (same rows): {bench.metric} {score:.4f} vs {baseline[bench.metric]:.4f} "
              f"({margin * 100:+.1f} points: fine-tuning {'beats' if margin > 0 else 'does not beat'} the probe)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
