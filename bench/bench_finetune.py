"""Fine-tuning methods side by side: full, LoRA, AdaLoRA, IA3, prompt tuning.

Each method trains the MiniLM classifier on the same rows of twitter_financial_news_sentiment
(``--rows`` of sent_train, ``--epochs`` epochs, its own default learning rate), in its own
process so that peak RSS (``ru_maxrss``) is that method's own. Reported per method: dev
macro-F1 of the best epoch (10% of the rows), macro-F1 on ``--valid-rows`` rows of
sent_valid (the held-out test set), training samples/s, peak RSS, the RSS growth while
training, artifact weights size, and ratios against ``full`` measured in the same run.

    TRELLIS_TORCH_THREADS=1 python bench/bench_finetune.py [--rows 1000] [--epochs 2]
        [--methods full,lora,adalora,ia3,prompt] [--max-length 64]

``--probe`` measures the frozen baseline instead: logistic regression on each encoder's
embeddings (``--encoders``, default MiniLM and, when ``make models-large`` ran, mpnet) on
stratified subsets of the tweets (valid) and BANKING77 (test), with sentences/s per encoder.

    TRELLIS_TORCH_THREADS=1 python bench/bench_finetune.py --probe [--probe-train 2000] [--probe-test 1000]
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

from bench.datasets import BANKING77_DIR  # noqa: E402
from bench.datasets import SENTIMENT_DIR as DATASET  # noqa: E402
from bench.datasets import read_labelled_csv as read_sentiment  # noqa: E402
from ml.finetune.peft_methods import METHODS  # noqa: E402


def _rss_mib() -> float:
    # Current resident set from /proc (pages -> MiB); no psutil needed on Linux.
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(method: str, ns: argparse.Namespace) -> dict[str, Any]:
    """Trains one method and measures it (runs in a child process)."""
    import torch

    from ml import devices
    from ml.finetune.classification import ClassifierTrainArgs, train_classifier
    from ml.finetune.data import subsample

    info = devices.current()
    data = subsample(read_sentiment(DATASET / "sent_train.csv"), ns.rows, seed=0)
    valid = subsample(read_sentiment(DATASET / "sent_valid.csv"), ns.valid_rows, seed=0)
    at_start: dict[str, float] = {}

    def on_event(event: Any) -> None:
        if getattr(event, "kind", None) == "start":  # model loaded, nothing trained yet
            at_start["rss"] = _rss_mib()

    with tempfile.TemporaryDirectory() as tmp:
        args = ClassifierTrainArgs(data=data, test_data=valid, role="sentiment",
                                   output_dir=Path(tmp) / "model", method=method, epochs=ns.epochs,
                                   max_length=ns.max_length, batch_size=ns.batch_size,
                                   checkpoint_every_steps=0, early_stopping_patience=ns.epochs)
        result = train_classifier(args, progress=on_event)
        weights = sum(f.stat().st_size for f in result.artifact_dir.glob("*.safetensors"))
    samples = sum(h["train_samples"] for h in result.history)
    seconds = sum(h["train_seconds"] for h in result.history)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    adapter = result.manifest.extra.get("adapter") or {}
    return {
        "method": method, "device": info.device, "threads": info.threads,
        "train_rows": result.history[0]["train_samples"], "steps": result.history[-1]["step"],
        "samples_per_s": samples / seconds, "peak_rss_mib": peak_kib / 1024,
        "rss_before_training_mib": at_start.get("rss", 0.0),
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if info.device == "cuda" else None,
        "weights_mib": weights / 2**20, "trainable_params": adapter.get("trainable_params"),
        "dev_macro_f1": result.manifest.metrics.get("dev", {}).get("macro_f1", float("nan")),
        "valid_macro_f1": result.manifest.metrics["macro_f1"],
        "valid_weighted_f1": result.manifest.metrics["weighted_f1"],
    }


def _row(r: dict[str, Any]) -> str:
    gpu = f"{r['gpu_peak_mib']:.0f}" if r["gpu_peak_mib"] is not None else "-"
    trainable = f"{r['trainable_params'] / 1e3:.0f}k" if r["trainable_params"] else "-"
    return (f"{r['method']:<8}{trainable:>11}{r['steps']:>7}{r['samples_per_s']:>11.1f}"
            f"{r['peak_rss_mib']:>10.0f}{r['peak_rss_mib'] - r['rss_before_training_mib']:>12.0f}{gpu:>10}"
            f"{r['weights_mib']:>13.2f}{r['dev_macro_f1']:>10.3f}{r['valid_macro_f1']:>10.3f}"
            f"{r['valid_weighted_f1']:>9.3f}")


MPNET_DIR = REPO / "var" / "models" / "all-mpnet-base-v2"  # where `make models-large` puts it


def _stratified(rows: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """About ``n`` rows keeping the label shares (same subset for every encoder)."""
    from ml.finetune.splits import stratified_split

    if n >= len(rows):
        return rows
    return stratified_split(rows, n / len(rows), 0.0, 0).dev


def probe(encoders: list[Path], n_train: int, n_test: int, batch_size: int) -> list[dict[str, Any]]:
    """Frozen-encoder baseline (``bench.probe``) per encoder and task, on stratified subsets."""
    from bench.probe import frozen_probe

    tasks = {
        "tweets valid": (read_sentiment(DATASET / "sent_train.csv"), read_sentiment(DATASET / "sent_valid.csv")),
        "banking77 test": (read_sentiment(BANKING77_DIR / "train.csv", "category"),
                           read_sentiment(BANKING77_DIR / "test.csv", "category")),
    }
    out = []
    for encoder in encoders:
        for task, (train, test) in tasks.items():
            train, test = _stratified(train, n_train), _stratified(test, n_test)
            scores = frozen_probe(encoder, train, test, batch_size=batch_size)
            name = encoder.parent.name if encoder.name == "model" else encoder.name  # bundled: package name
            out.append({"encoder": name, "task": task, "train": len(train), "test": len(test),
                        **{k: scores[k] for k in ("accuracy", "weighted_f1", "sentences_per_s")}})
            print(json.dumps(out[-1]), flush=True)
    return out


def _print_probe(results: list[dict[str, Any]], threads: str) -> None:
    print(f"\nfrozen probe (logistic regression, C=10, on normalised embeddings), stratified subsets, "
          f"CPU, {threads} torch thread(s)")
    head = f"{'encoder':<22}{'task':<16}{'train':>7}{'test':>6}{'accuracy':>10}{'wF1':>8}{'sent/s':>9}"
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['encoder']:<22}{r['task']:<16}{r['train']:>7}{r['test']:>6}{r['accuracy']:>10.3f}"
              f"{r['weighted_f1']:>8.3f}{r['sentences_per_s']:>9.1f}")
    first = results[0]["encoder"]
    base = {r["task"]: r for r in results if r["encoder"] == first}
    for r in results:
        if r["encoder"] != first:
            b = base[r["task"]]
            speed = r["sentences_per_s"] / b["sentences_per_s"]
            print(f"{r['encoder']} vs {first} on {r['task']}: wF1 {r['weighted_f1'] - b['weighted_f1']:+.3f}, "
                  f"accuracy {r['accuracy'] - b['accuracy']:+.3f}, speed x{speed:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows of sent_train (10%% become dev)")
    parser.add_argument("--valid-rows", type=int, default=600, help="rows of sent_valid to test on")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, full first")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help="frozen-encoder probe instead of fine-tuning")
    parser.add_argument("--encoders", default=None,
                        help="comma-separated encoder folders (default: MiniLM, and mpnet if installed)")
    parser.add_argument("--probe-train", type=int, default=2000, help="train rows per task (stratified)")
    parser.add_argument("--probe-test", type=int, default=1000, help="test rows per task (stratified)")
    ns = parser.parse_args()
    if ns.probe:
        from ml.defaults import embedder_weights

        encoders = ([Path(e) for e in ns.encoders.split(",")] if ns.encoders
                    else [Path(embedder_weights())] + ([MPNET_DIR] if MPNET_DIR.is_dir() else []))
        _print_probe(probe(encoders, ns.probe_train, ns.probe_test, 64),
                     os.environ.get("TRELLIS_TORCH_THREADS", "default"))
        return 0
    if ns.worker:
        print(json.dumps(worker(ns.worker, ns)))
        return 0
    methods = [m.strip() for m in ns.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    results = []
    for method in methods:
        out = subprocess.run(  # noqa: S603 - this script with fixed arguments
            [sys.executable, __file__, "--worker", method, "--rows", str(ns.rows),
             "--valid-rows", str(ns.valid_rows), "--epochs", str(ns.epochs),
             "--max-length", str(ns.max_length), "--batch-size", str(ns.batch_size)],
            capture_output=True, text=True, cwd=REPO, check=False)
        if out.returncode != 0:
            print(f"{method}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    if not results:
        return 1
    first = results[0]
    print(f"\nfine-tune, {ns.epochs} epoch(s), {first['train_rows']} train rows of {ns.rows} "
          f"(twitter_financial_news_sentiment), valid = {ns.valid_rows} rows of sent_valid, batch "
          f"{ns.batch_size} x {ns.max_length} tokens, device {first['device']}, {first['threads']} "
          f"torch thread(s); each method at its default learning rate")
    head = (f"{'method':<8}{'trainable':>11}{'steps':>7}{'samples/s':>11}{'peak MiB':>10}"
            f"{'train +MiB':>12}{'GPU MiB':>10}{'weights MiB':>13}{'dev mF1':>10}{'val mF1':>10}{'val wF1':>9}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(_row(r))
    base = next((r for r in results if r["method"] == "full"), None)
    if base is not None:
        print(f"\nratios vs full (same run): {'method':<8}{'samples/s':>11}{'peak RSS':>10}{'weights':>10}"
              f"{'d val mF1':>11}")
        for r in results:
            if r is not base:
                print(f"{'':<27}{r['method']:<8}{r['samples_per_s'] / base['samples_per_s']:>11.2f}"
                      f"{r['peak_rss_mib'] / base['peak_rss_mib']:>10.2f}"
                      f"{r['weights_mib'] / base['weights_mib']:>10.4f}"
                      f"{r['valid_macro_f1'] - base['valid_macro_f1']:>+11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
