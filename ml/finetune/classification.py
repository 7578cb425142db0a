"""Fine-tunes a text classifier (intent, sentiment) on the MiniLM encoder: full or LoRA.

A hand-written torch loop rather than HF ``Trainer`` so that a background job controls it:
progress callbacks, cooperative cancellation, early stopping on dev macro-F1 with the best
weights kept, and checkpoints (every epoch and every ``checkpoint_every_steps`` steps) from
which a killed run started again with the same arguments resumes at the same batch. The
result is an artifact directory (``hf-classifier`` or ``lora-classifier``, see
``ml.artifacts``) whose manifest carries the held-out test report.

    python -m ml.finetune.classification --data sent.csv --role sentiment --method lora --out DIR
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml import devices
from ml.artifacts import MANIFEST, Manifest, new_version_id
from ml.finetune import checkpoint as ckpt
from ml.finetune.classifier_args import DEFAULT_LR, ClassifierTrainArgs, TrainingCancelled, TrainResult
from ml.finetune.classifier_io import evaluate_artifact, predict_texts, report_on, save_classifier
from ml.finetune.data import DatasetInvalid, Split, class_weights, stratified_split, subsample, validate

__all__ = ["ClassifierTrainArgs", "DatasetInvalid", "TrainResult", "TrainingCancelled",
           "evaluate_artifact", "predict_texts", "train_classifier", "main"]

log = logging.getLogger(__name__)

LORA_TARGETS = ["query", "value"]  # BERT attention projections (MiniLM is a BERT)
PROGRESS_EVERY_STEPS = 10
Progress = Callable[[dict[str, Any]], None]


# -- data -------------------------------------------------------------------------------
def _prepare(args: ClassifierTrainArgs) -> tuple[list[str], Split, str]:
    """Validates and splits the data; raises DatasetInvalid before any model loads."""
    expected = set(args.labels) if args.labels else None
    report = validate(args.data, max_bytes=args.max_bytes, expected_labels=expected)
    if not report.ok:
        raise DatasetInvalid(report)
    for warning in report.warnings:
        log.warning("dataset: %s", warning)
    labels = list(args.labels) if args.labels else sorted(report.label_counts)
    data_hash = report.data_hash
    if args.test_data is not None:
        test_report = validate(args.test_data, max_bytes=args.max_bytes, min_per_class=1)
        unknown = sorted(set(test_report.label_counts) - set(labels))
        if unknown:
            test_report.errors.append(f"test labels not in the training labels: {', '.join(unknown)}")
        if test_report.errors:
            test_report.ok = False
            raise DatasetInvalid(test_report)
        split = stratified_split(report.rows, args.dev_fraction, 0.0, args.seed)
        split.test = test_report.rows
        data_hash = f"{data_hash}+{test_report.data_hash}"
    else:
        split = stratified_split(report.rows, args.dev_fraction, args.test_fraction, args.seed)
    if args.max_train_rows:
        split.train = subsample(split.train, args.max_train_rows, args.seed)
    return labels, split, data_hash


def _epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                   bucketing: bool) -> list[list[int]]:
    """Batch order of one epoch, a pure function of (seed, epoch) so a resume can skip.

    With bucketing, pools of 50 batches are sorted by length before being cut, so a batch
    pads to similar lengths (less wasted compute), and the batches are then shuffled.
    """
    rng = random.Random(seed * 1000 + epoch)  # noqa: S311 - seeded for reproducible runs, not a secret
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if bucketing:
        pool = batch_size * 50
        order = [i for s in range(0, len(order), pool)
                 for i in sorted(order[s:s + pool], key=lambda j: lengths[j])]
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if bucketing:
        rng.shuffle(batches)
    return batches


# -- model ------------------------------------------------------------------------------
def _build_model(args: ClassifierTrainArgs, labels: list[str]) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(  # nosec B615  # local base-model folder, not a hub id
        str(args.base_model), num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    if args.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(task_type=TaskType.SEQ_CLS, r=args.lora_r, lora_alpha=args.lora_alpha,
                            lora_dropout=args.lora_dropout, target_modules=LORA_TARGETS,
                            modules_to_save=["classifier"])
        model = get_peft_model(model, config)
    return model


def _optimizer(model: torch.nn.Module, args: ClassifierTrainArgs) -> torch.optim.Optimizer:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:  # biases and LayerNorm gains are not decayed (BERT recipe)
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr)


def _train_autocast(info: devices.DeviceInfo) -> contextlib.AbstractContextManager[Any]:
    # bf16 autocast needs no loss scaling; fp16 would, so fp16 GPUs train in fp32.
    if info.device == "cuda" and info.autocast_dtype == torch.bfloat16:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# -- training ---------------------------------------------------------------------------
def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _fingerprint(args: ClassifierTrainArgs, data_hash: str, labels: list[str]) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (anything that changes the run)."""
    record = args.record()
    for key in ("output_dir", "checkpoint_dir", "parent_version", "keep_checkpoint",
                "checkpoint_every_steps", "eval_batch_size", "data", "test_data", "job_key"):
        record.pop(key, None)
    return {**record, "data_hash": data_hash, "labels": labels}


def train_classifier(
    args: ClassifierTrainArgs,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fine-tunes, evaluates on the held-out split and writes the artifact.

    Args:
        args: the run's arguments.
        progress: called with ``{"event": "start"|"step"|"epoch"|"checkpoint"|"done", ...}``;
            steps every 10 optimizer steps, epochs with ``train_loss`` and the ``dev`` report.
        should_stop: polled after every step; True saves a checkpoint and cancels.

    Returns:
        The TrainResult.

    Raises:
        DatasetInvalid: validation failed (raised before any model loads).
        TrainingCancelled: ``should_stop()`` returned True (a re-run resumes).
        FileExistsError: ``output_dir`` holds something that is not an artifact.
    """
    emit = progress or (lambda event: None)
    labels, split, data_hash = _prepare(args)
    out_dir = Path(args.output_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise FileExistsError(f"{out_dir} is not empty and holds no artifact; not replacing it")
    ckpt_dir = args.checkpoint_path
    info = devices.current()
    _seed_all(args.seed)  # before the head's random init, so two fresh runs match

    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    base_dir = str(args.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)  # nosec B615  # local base-model folder, not a hub id
    model = _build_model(args, labels).to(info.device)
    index = {label: i for i, label in enumerate(labels)}
    texts = [t for t, _ in split.train]
    targets = [index[label] for _, label in split.train]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
    per_epoch = math.ceil(len(targets) / args.batch_size)
    total_steps = per_epoch * args.epochs
    optimizer = _optimizer(model, args)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(total_steps * args.warmup_ratio), total_steps)
    weight = None
    if args.class_weighting == "balanced":
        weight = torch.tensor(class_weights([label for _, label in split.train], labels),
                              dtype=torch.float32, device=info.device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)

    fingerprint = _fingerprint(args, data_hash, labels)
    run: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "history": [], "best_score": None,
                           "best_epoch": None, "best_file": None, "bad_epochs": 0,
                           "stopped": False, "loss_sum": 0.0, "loss_n": 0, "seconds": 0.0}
    owner = {"job_key": args.job_key, "data_hash": data_hash}  # checked before a checkpoint is read
    restored = ckpt.resume_training(ckpt_dir, fingerprint, model, optimizer, scheduler, owner=owner)
    if restored is not None:
        run = restored
        log.info("resuming from step %d (epoch %d, batch %d)", run["step"], run["epoch"] + 1, run["batch"])
    resumed_from = run["step"]

    def save(reason: str) -> None:
        ckpt.save_training(ckpt_dir, fingerprint, model, optimizer, scheduler, run, owner=owner)
        emit({"event": "checkpoint", "reason": reason, "step": run["step"], "epoch": run["epoch"] + 1})

    emit({"event": "start", "total_steps": total_steps, "steps_per_epoch": per_epoch,
          "resumed_from_step": resumed_from, "split": split.sizes(), "labels": labels,
          "device": info.device, "method": args.method})
    best_weights: dict[str, torch.Tensor] | None = None
    while run["epoch"] < args.epochs and not run["stopped"]:
        epoch = run["epoch"]
        batches = _epoch_batches(lengths, args.batch_size, args.seed, epoch, args.length_bucketing)
        model.train()
        started = time.perf_counter()
        for b in range(run["batch"], len(batches)):
            idx = batches[b]
            feats = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=args.max_length, return_tensors="pt").to(info.device)
            y = torch.tensor([targets[i] for i in idx], device=info.device)
            with _train_autocast(info):
                logits = model(**feats).logits
            loss = loss_fn(logits.float(), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            run["step"] += 1
            run["batch"] = b + 1
            run["loss_sum"] += float(loss.detach()) * len(idx)
            run["loss_n"] += len(idx)
            if run["step"] % PROGRESS_EVERY_STEPS == 0 or b + 1 == len(batches):
                emit({"event": "step", "epoch": epoch + 1, "step": run["step"],
                      "total_steps": total_steps, "loss": float(loss.detach()),
                      "lr": scheduler.get_last_lr()[0]})
            stop = should_stop is not None and should_stop()
            periodic = args.checkpoint_every_steps and run["step"] % args.checkpoint_every_steps == 0
            if stop or (periodic and b + 1 < len(batches)):
                run["seconds"] += time.perf_counter() - started
                started = time.perf_counter()
                save("cancel" if stop else "steps")
                if stop:
                    raise TrainingCancelled(run["step"], ckpt_dir)
        run["seconds"] += time.perf_counter() - started
        train_loss = run["loss_sum"] / max(1, run["loss_n"])
        dev_report, _ = report_on(model, tokenizer, split.dev, labels, max_length=args.max_length,
                                  batch_size=args.eval_batch_size)
        score = dev_report["macro_f1"] if split.dev else -train_loss
        entry = {"epoch": epoch + 1, "train_loss": train_loss, "dev": dev_report,
                 "train_seconds": run["seconds"], "train_samples": run["loss_n"],
                 "step": run["step"]}
        run["history"].append(entry)
        if run["best_score"] is None or score > run["best_score"]:
            best_weights = ckpt.trainable_state(model)
            run.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0,
                       best_file=ckpt.save_best(ckpt_dir, epoch + 1, best_weights))
        else:
            run["bad_epochs"] += 1
            run["stopped"] = run["bad_epochs"] >= args.early_stopping_patience
        run.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_n=0, seconds=0.0)
        emit({"event": "epoch", **entry, "best_epoch": run["best_epoch"], "early_stop": run["stopped"]})
        save("epoch")

    if run["best_file"] is not None:
        ckpt.load_trainable_state(model, best_weights or ckpt.load_best(ckpt_dir, run["best_file"]))
    result = _finish(args, model, tokenizer, labels, split, data_hash, run, resumed_from)
    if not args.keep_checkpoint:
        ckpt.clear(ckpt_dir)
    emit({"event": "done", "artifact_dir": str(result.artifact_dir), "version": result.manifest.version,
          "metrics": {k: result.manifest.metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1")}})
    return result


def _finish(args: ClassifierTrainArgs, model: torch.nn.Module, tokenizer: Any, labels: list[str],
            split: Split, data_hash: str, run: dict[str, Any], resumed_from: int) -> TrainResult:
    """Evaluates the best weights on the held-out rows and writes the artifact atomically."""
    held_out, evaluated_on = (split.test, "test") if split.test else (split.dev, "dev")
    metrics, preds = report_on(model, tokenizer, held_out, labels, max_length=args.max_length,
                               batch_size=args.eval_batch_size)
    gold = [label for _, label in held_out]
    best = next((h for h in run["history"] if h["epoch"] == run["best_epoch"]), None)
    metrics["dev"] = best["dev"] if best else {}
    metrics["evaluated_on"] = evaluated_on
    majority = Counter(label for _, label in split.train).most_common(1)[0][0]
    metrics["majority_baseline_accuracy"] = (
        sum(g == majority for g in gold) / len(gold) if gold else 0.0)
    manifest = Manifest(
        role=args.role, kind="lora-classifier" if args.method == "lora" else "hf-classifier",
        version=new_version_id(args.role), base_model=str(args.base_model),
        task="text-classification", labels=labels, data_hash=data_hash, metrics=metrics,
        parent_version=args.parent_version, job_key=args.job_key,
        extra={"max_length": args.max_length, "method": args.method,
               "epochs_run": len(run["history"]), "best_epoch": run["best_epoch"],
               "split": split.sizes(), "train_args": args.record(), "resumed_from_step": resumed_from,
               "steps": run["step"], "train_seconds": sum(h["train_seconds"] for h in run["history"])})
    out_dir = save_classifier(model, tokenizer, manifest, Path(args.output_dir))
    return TrainResult(manifest, out_dir, run["history"], resumed_from, list(held_out), preds)


# -- command line -----------------------------------------------------------------------
def _print_progress(event: dict[str, Any]) -> None:
    kind = event["event"]
    if kind == "start":
        print(f"start: {event['split']} labels={len(event['labels'])} steps={event['total_steps']} "
              f"resumed_from_step={event['resumed_from_step']} on {event['device']}", flush=True)
    elif kind == "step":
        print(f"epoch {event['epoch']} step {event['step']}/{event['total_steps']} "
              f"loss {event['loss']:.4f}", flush=True)
    elif kind == "epoch":
        dev = event["dev"]
        print(f"epoch {event['epoch']}: train_loss {event['train_loss']:.4f} dev acc "
              f"{dev['accuracy']:.4f} macro_f1 {dev['macro_f1']:.4f} "
              f"({event['train_samples'] / max(event['train_seconds'], 1e-9):.1f} samples/s)",
              flush=True)
    elif kind == "done":
        print(f"done: {event['artifact_dir']} {json.dumps(event['metrics'])}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: fine-tune a classifier and print progress and the test report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="CSV (text,label) or JSONL file")
    parser.add_argument("--role", required=True, help="registry role, e.g. intent or sentiment")
    parser.add_argument("--out", required=True, help="artifact directory to write")
    parser.add_argument("--method", choices=sorted(DEFAULT_LR), default="full")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--max-train-rows", type=int, default=None)
    parser.add_argument("--labels", default=None, help="comma-separated expected labels")
    parser.add_argument("--test-data", default=None, help="held-out test file (else 10%% of data)")
    parser.add_argument("--base-model", default=None, help="encoder folder (default: bundled MiniLM)")
    parser.add_argument("--parent-version", default=None)
    parser.add_argument("--checkpoint-dir", default=None)
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    extra = {"base_model": ns.base_model} if ns.base_model else {}
    args = ClassifierTrainArgs(
        data=ns.data, role=ns.role, output_dir=ns.out, method=ns.method, epochs=ns.epochs,
        learning_rate=ns.lr, batch_size=ns.batch_size, max_length=ns.max_length, seed=ns.seed,
        early_stopping_patience=ns.patience, max_train_rows=ns.max_train_rows,
        labels=ns.labels.split(",") if ns.labels else None, test_data=ns.test_data,
        parent_version=ns.parent_version, checkpoint_dir=ns.checkpoint_dir, **extra)
    try:
        result = train_classifier(args, progress=_print_progress)
    except DatasetInvalid as exc:
        print(json.dumps(exc.report.to_dict(), indent=2), file=sys.stderr)
        return 2
    metrics = {k: v for k, v in result.manifest.metrics.items() if k != "dev"}
    print(json.dumps({"version": result.manifest.version, "metrics": metrics}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
