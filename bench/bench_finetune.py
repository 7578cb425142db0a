"""Fine-tuning cost: full fine-tune vs LoRA on the same rows (speed and peak memory).

Trains the MiniLM classifier for one epoch on ~600 rows of twitter_financial_news_sentiment
with each method, each in its own process so that peak RSS (``ru_maxrss``) is that method's
own, and prints a table with the ratio LoRA/full.

    TRELLIS_TORCH_THREADS=1 python bench/bench_finetune.py [--rows 600] [--max-length 64]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

from bench.datasets import SENTIMENT_DIR as DATASET  # noqa: E402
from bench.datasets import read_labelled_csv as read_sentiment  # noqa: E402


def _rss_mib() -> float:
    # Current resident set from /proc (pages -> MiB); no psutil needed on Linux.
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(method: str, rows: int, max_length: int, batch_size: int) -> dict[str, Any]:
    """Trains one method for one epoch and measures it (runs in a child process)."""
    import torch

    from ml import devices
    from ml.finetune.classification import ClassifierTrainArgs, train_classifier
    from ml.finetune.data import subsample

    info = devices.current()
    data = subsample(read_sentiment(DATASET / "sent_train.csv"), rows, seed=0)
    at_start: dict[str, float] = {}

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "start":  # model loaded, nothing trained yet
            at_start["rss"] = _rss_mib()

    with tempfile.TemporaryDirectory() as tmp:
        args = ClassifierTrainArgs(data=data, role="sentiment", output_dir=Path(tmp) / "model",
                                   method=method, epochs=1, max_length=max_length,
                                   batch_size=batch_size, checkpoint_every_steps=0)
        result = train_classifier(args, progress=on_event)
        weights = sum(f.stat().st_size for f in result.artifact_dir.glob("*.safetensors"))
    epoch = result.history[0]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "method": method, "device": info.device, "threads": info.threads,
        "train_rows": epoch["train_samples"], "steps": epoch["step"],
        "samples_per_s": epoch["train_samples"] / epoch["train_seconds"],
        "peak_rss_mib": peak_kib / 1024, "rss_before_training_mib": at_start.get("rss", 0.0),
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if info.device == "cuda" else None,
        "weights_mib": weights / 2**20, "test_accuracy": result.manifest.metrics["accuracy"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--worker", choices=["full", "lora"], help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.worker:
        print(json.dumps(worker(ns.worker, ns.rows, ns.max_length, ns.batch_size)))
        return 0
    results = {}
    for method in ("full", "lora"):
        out = subprocess.run(
            [sys.executable, __file__, "--worker", method, "--rows", str(ns.rows),
             "--max-length", str(ns.max_length), "--batch-size", str(ns.batch_size)],
            capture_output=True, text=True, check=True, cwd=REPO)
        results[method] = json.loads(out.stdout.strip().splitlines()[-1])
    full, lora = results["full"], results["lora"]
    print(f"\nfine-tune, 1 epoch, {full['train_rows']} train rows of {ns.rows} "
          f"(twitter_financial_news_sentiment), batch {ns.batch_size} x {ns.max_length} tokens, "
          f"device {full['device']}, {full['threads']} torch thread(s)")
    head = (f"{'method':<8}{'steps':>7}{'samples/s':>11}{'peak RSS MiB':>14}{'train +MiB':>12}"
            f"{'GPU peak MiB':>14}{'weights MiB':>13}{'test acc':>10}")
    print(head)
    print("-" * len(head))
    for r in (full, lora):
        gpu = f"{r['gpu_peak_mib']:.0f}" if r["gpu_peak_mib"] is not None else "-"
        print(f"{r['method']:<8}{r['steps']:>7}{r['samples_per_s']:>11.1f}{r['peak_rss_mib']:>14.0f}"
              f"{r['peak_rss_mib'] - r['rss_before_training_mib']:>12.0f}{gpu:>14}"
              f"{r['weights_mib']:>13.2f}{r['test_accuracy']:>10.3f}")
    gpu_ratio = (f"{lora['gpu_peak_mib'] / full['gpu_peak_mib']:.2f}"
                 if full["gpu_peak_mib"] else "-")
    print(f"{'LoRA/full':<8}{'':>7}{lora['samples_per_s'] / full['samples_per_s']:>11.2f}"
          f"{lora['peak_rss_mib'] / full['peak_rss_mib']:>14.2f}{'':>12}{gpu_ratio:>14}"
          f"{lora['weights_mib'] / full['weights_mib']:>13.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
