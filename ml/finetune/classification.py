"""Fine-tunes a text classifier (intent, sentiment) on the MiniLM encoder: full or peft.

The loop is ``ml.finetune.loop.Trainer`` (shared with the chat LM): progress events,
cooperative cancellation, early stopping on dev macro-F1 with the best weights kept,
checkpoints (every epoch and every ``checkpoint_every_steps`` steps) from which a killed
run started again with the same arguments resumes at the same batch, and data-parallel
processes. This module adds what is classifier-specific: the split, the model and its
head, the recipe (warmup + decay, a faster head, a head-only phase, an optional
contrastive stage) and the artifact (``hf-classifier`` or ``lora-classifier``, see
``ml.artifacts``) whose manifest carries the held-out test report.

    python -m ml.finetune.classification --data sent.csv --role sentiment --method lora --out DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ml import devices
from ml.artifacts import MANIFEST, Manifest, atomic_write_json, new_version_id, read_manifest
from ml.finetune.classifier_args import METHODS, ClassifierTrainArgs, TrainingCancelled, TrainResult
from ml.finetune.classifier_io import evaluate_artifact, predict_texts, report_on, save_classifier
from ml.finetune.data import DatasetInvalid, Split, class_weights, stratified_split, subsample, validate
from ml.finetune.events import EpochDone, Progress, StepDone, TrainingDone, TrainingEvent, TrainingStarted
from ml.finetune.loop import Evaluation, LoopSettings, Trainer, epoch_batches, head_parameter_names, seed_all
from ml.finetune.params import add_cli_flags
from ml.finetune.probe_head import init_head_from_probe
from ml.finetune.weight_averaging import weight_average_and_refit
from ml.mean_pooling import pooling_of, use_mean_pooling

__all__ = ["ClassifierTrainArgs", "DatasetInvalid", "TrainResult", "TrainingCancelled",
           "evaluate_artifact", "predict_texts", "train_classifier", "main"]

log = logging.getLogger(__name__)

PROGRESS_EVERY_STEPS = 10
CONTRASTIVE_EPOCHS = 1  # SetFit's default: one pass over the generated pairs
STAGE_RECORD = "trellis-stage.json"  # beside a contrastive encoder: what made it


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
    split.oos = report.oos_rows
    return labels, split, data_hash


# -- model ------------------------------------------------------------------------------
def _base_model(args: ClassifierTrainArgs, labels: list[str]) -> torch.nn.Module:
    """The encoder with a new head, pooling as ``args.pooling`` asks (no peft wrapper yet)."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(  # nosec B615  # local base-model folder, not a hub id
        str(args.base_model), num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    if args.pooling == "mean":
        use_mean_pooling(model)  # before peft, which must not copy a pooler that is gone
    return model


def _wrap(model: torch.nn.Module, args: ClassifierTrainArgs, total_steps: int | None = None) -> torch.nn.Module:
    from ml.finetune.peft_methods import wrap_for_training

    # total_steps: AdaLoRA's rank-budget schedule needs it; the other methods ignore it.
    return wrap_for_training(model, args.method, r=args.lora_r, alpha=args.lora_alpha,
                             dropout=args.lora_dropout, total_steps=total_steps)


def _build_model(args: ClassifierTrainArgs, labels: list[str],
                 total_steps: int | None = None) -> torch.nn.Module:
    """The model as training starts it, with a random head."""
    return _wrap(_base_model(args, labels), args, total_steps)


def _optimizer(model: torch.nn.Module, args: ClassifierTrainArgs, head: frozenset[str]) -> torch.optim.Optimizer:
    """AdamW; the head learns ``head_lr_multiplier`` times faster (it starts untrained, or as a probe)."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:  # biases and LayerNorm gains are not decayed (BERT recipe)
            groups.setdefault((name in head, param.ndim >= 2), []).append(param)
    return torch.optim.AdamW(
        [{"params": params, "weight_decay": args.weight_decay if decayed else 0.0,
          "lr": args.lr * (args.head_lr_multiplier if is_head else 1.0)}
         for (is_head, decayed), params in sorted(groups.items())], lr=args.lr)


def _scheduler(optimizer: torch.optim.Optimizer, args: Any, total_steps: int) -> Any:
    """Linear warmup over ``warmup_ratio`` of the steps, then linear or cosine decay to 0."""
    from transformers import get_scheduler

    return get_scheduler(args.lr_schedule, optimizer, num_warmup_steps=int(total_steps * args.warmup_ratio),
                         num_training_steps=total_steps)


def _contrastive_base(args: ClassifierTrainArgs, split: Split, data_hash: str) -> Path:
    """The encoder the classifier starts from: the base, or its contrastive-stage copy.

    The contrastive encoder is kept beside the artifact (``<output>.contrastive``): an
    adapter artifact names it as its base model. A re-run of the same arguments reuses it.
    """
    base = Path(args.base_model)
    if not args.contrastive_pairs:
        return base
    out_dir = Path(args.output_dir).with_name(f"{Path(args.output_dir).name}.contrastive")
    record = {"base_model": str(base), "pairs": args.contrastive_pairs, "epochs": CONTRASTIVE_EPOCHS,
              "seed": args.seed, "data_hash": data_hash, "train_rows": len(split.train)}
    try:
        done = json.loads((out_dir / STAGE_RECORD).read_text(encoding="utf-8")) == record
    except (OSError, ValueError):
        done = False
    if done:
        return out_dir
    from ml.finetune.contrastive import contrastive_stage

    made = Path(contrastive_stage(base, split.train, pairs=args.contrastive_pairs, epochs=CONTRASTIVE_EPOCHS,
                                  seed=args.seed, out_dir=out_dir))
    atomic_write_json(made / STAGE_RECORD, record)
    return made


class _ClassifierTask:
    """Batches of tokenized rows, class-weighted cross-entropy, dev macro-F1."""

    def __init__(self, args: ClassifierTrainArgs, tokenizer: Any, split: Split, labels: list[str],
                 device: str) -> None:
        self.args, self.tokenizer, self.split, self.labels, self.device = args, tokenizer, split, labels, device
        index = {label: i for i, label in enumerate(labels)}
        self.texts = [t for t, _ in split.train]
        self.targets = [index[label] for _, label in split.train]
        self.lengths = [len(ids) for ids in tokenizer(self.texts, truncation=True,
                                                      max_length=args.max_length)["input_ids"]]
        weight = None
        if args.class_weighting == "balanced":
            weight = torch.tensor(class_weights([label for _, label in split.train], labels),
                                  dtype=torch.float32, device=device)
        self.loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=args.label_smoothing)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        return epoch_batches(self.lengths, self.args.batch_size, self.args.seed, epoch, self.args.length_bucketing)

    def batch_loss(self, model: torch.nn.Module, rows: list[int]) -> torch.Tensor:
        feats = self.tokenizer([self.texts[i] for i in rows], padding=True, truncation=True,
                               max_length=self.args.max_length, return_tensors="pt").to(self.device)
        y = torch.tensor([self.targets[i] for i in rows], device=self.device)
        return self.loss_fn(model(**feats).logits.float(), y)

    def evaluate(self, model: torch.nn.Module) -> Evaluation | None:
        if not self.split.dev:
            return None
        report, _ = report_on(model, self.tokenizer, self.split.dev, self.labels, max_length=self.args.max_length,
                              batch_size=self.args.eval_batch_size)
        return Evaluation(score=report["macro_f1"], dev=report)


def _fingerprint(args: ClassifierTrainArgs, data_hash: str, labels: list[str]) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (anything that changes the run)."""
    record = args.record()
    for key in ("output_dir", "checkpoint_dir", "parent_version", "keep_checkpoint", "processes",
                "checkpoint_every_steps", "eval_batch_size", "data", "test_data", "job_key"):
        record.pop(key, None)
    return {**record, "data_hash": data_hash, "labels": labels}


def _check_output_dir(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise FileExistsError(f"{out_dir} is not empty and holds no artifact; not replacing it")


# -- training ---------------------------------------------------------------------------
def train_classifier(
    args: ClassifierTrainArgs,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    world: Any = None,
) -> TrainResult:
    """Fine-tunes, evaluates on the held-out split and writes the artifact.

    Args:
        args: the run's arguments (``processes > 1`` runs ``ml.finetune.distributed``).
        progress: receives ``ml.finetune.events`` (steps every 10 optimizer steps, epochs
            with ``train_loss`` and the ``dev`` report).
        should_stop: polled after every step; True saves a checkpoint and cancels.
        world: the data-parallel group when called inside a worker process (internal).

    Returns:
        The TrainResult.

    Raises:
        DatasetInvalid: validation failed (raised before any model loads).
        TrainingCancelled: ``should_stop()`` returned True (a re-run resumes).
        FileExistsError: ``output_dir`` holds something that is not an artifact.
        DevicesUnavailable: ``processes`` asks for more GPUs than the machine has.
    """
    if args.processes > 1 and world is None:
        from ml.finetune.distributed import run_data_parallel

        return run_data_parallel(train_classifier, args, progress=progress, should_stop=should_stop)
    labels, split, data_hash = _prepare(args)
    _check_output_dir(Path(args.output_dir))
    ckpt_dir = args.checkpoint_path
    info = devices.current()
    device = world.device if world is not None else info.device
    base_dir = _contrastive_base(args, split, data_hash) if world is None or world.rank == 0 else None
    if world is not None:
        base_dir = Path(world.broadcast_object(str(base_dir) if base_dir else None))
    run_args = args if base_dir == Path(args.base_model) else _with_base(args, base_dir)
    seed_all(args.seed)  # before the head's random init, so two fresh runs match

    from transformers import AutoTokenizer

    from ml.finetune.peft_methods import adapter_config_record, after_optimizer_step, auxiliary_loss

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))  # nosec B615  # local base-model folder, not a hub id
    per_epoch = math.ceil(len(split.train) / args.batch_size)
    total_steps = min(per_epoch * args.epochs, args.max_steps or per_epoch * args.epochs)
    task = _ClassifierTask(args, tokenizer, split, labels, device)
    model = _base_model(run_args, labels).to(device)
    # Linear probe, then fine-tune (ml.finetune.probe_head); a resumed run's checkpoint
    # replaces this head with the one it had trained.
    head_init = "probe" if args.head_init == "probe" and init_head_from_probe(
        model, tokenizer, task.texts, task.targets, max_length=args.max_length, device=device,
        balanced=args.class_weighting == "balanced", seed=args.seed) else "random"
    model = _wrap(model, run_args, total_steps)
    head = head_parameter_names(model)
    optimizer = _optimizer(model, args, head)
    scheduler = _scheduler(optimizer, args, total_steps)
    trainer = Trainer(
        model=model, forward_model=world.wrap(model) if world is not None else model, optimizer=optimizer,
        scheduler=scheduler, task=task,
        settings=LoopSettings(epochs=args.epochs, total_steps=total_steps, max_grad_norm=args.max_grad_norm,
                              patience=args.early_stopping_patience,
                              checkpoint_every_steps=args.checkpoint_every_steps,
                              progress_every=PROGRESS_EVERY_STEPS, head_only_epochs=args.head_only_epochs,
                              head_names=head),
        checkpoint_dir=ckpt_dir, fingerprint=_fingerprint(args, data_hash, labels),
        owner={"job_key": args.job_key, "data_hash": data_hash},  # checked before a checkpoint is read
        emit=progress, should_stop=should_stop, world=world,
        after_step=lambda step: after_optimizer_step(model, step), extra_loss=lambda: auxiliary_loss(model))
    resumed_from = trainer.resume().step
    trainer.emit(TrainingStarted(total_steps=total_steps, steps_per_epoch=per_epoch, resumed_from_step=resumed_from,
                                 split=split.sizes(), labels=labels, device=device, method=args.method,
                                 processes=args.processes))
    run = trainer.run()
    if world is not None and world.rank != 0:
        return TrainResult(read_manifest_after(world, Path(args.output_dir)), Path(args.output_dir), run.history,
                           resumed_from)
    recipe: dict[str, Any] = {"adapter": adapter_config_record(model), "head_init": head_init}
    dev = run.best_dev()
    if args.wise_alpha < 1.0:  # WiSE-FT (ml.finetune.weight_averaging)
        recipe["weight_averaging"], dev = weight_average_and_refit(
            model, tokenizer, task, split, labels, base_dir=base_dir, alpha=args.wise_alpha, seed=args.seed,
            fine_tuned_dev=dev)
    result = _finish(run_args, model, tokenizer, labels, split, data_hash, run.to_dict(), resumed_from, recipe, dev)
    if not args.keep_checkpoint:
        from ml.finetune import checkpoint as ckpt

        ckpt.clear(ckpt_dir)
    trainer.emit(TrainingDone(artifact_dir=str(result.artifact_dir), version=result.manifest.version,
                              metrics={k: result.manifest.metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1")}))
    if world is not None:
        world.barrier()  # the other processes read the manifest once it is written
    return result


def _with_base(args: ClassifierTrainArgs, base_dir: Path) -> ClassifierTrainArgs:
    import dataclasses

    return dataclasses.replace(args, base_model=str(base_dir))


def read_manifest_after(world: Any, out_dir: Path) -> Manifest:
    """The artifact's manifest, read by a non-main process once rank 0 has written it."""
    world.barrier()
    return read_manifest(out_dir)


def _finish(args: ClassifierTrainArgs, model: torch.nn.Module, tokenizer: Any, labels: list[str],
            split: Split, data_hash: str, run: dict[str, Any], resumed_from: int,
            recipe: dict[str, Any], dev: dict[str, Any] | None) -> TrainResult:
    """Evaluates the final weights on the held-out rows and writes the artifact atomically
    (``dev``: the final weights' dev report, None without dev rows)."""
    from ml.finetune.peft_methods import is_adapter_method

    held_out, evaluated_on = (split.test, "test") if split.test else (split.dev, "dev")
    metrics, preds = report_on(model, tokenizer, held_out, labels, max_length=args.max_length,
                               batch_size=args.eval_batch_size)
    gold = [label for _, label in held_out]
    metrics["dev"] = dev or {}
    metrics["evaluated_on"] = evaluated_on
    majority = Counter(label for _, label in split.train).most_common(1)[0][0]
    metrics["majority_baseline_accuracy"] = (
        sum(g == majority for g in gold) / len(gold) if gold else 0.0)
    manifest = Manifest(
        role=args.role, kind="lora-classifier" if is_adapter_method(args.method) else "hf-classifier",
        version=new_version_id(args.role), base_model=str(args.base_model),
        task="text-classification", labels=labels, data_hash=data_hash, metrics=metrics,
        parent_version=args.parent_version, job_key=args.job_key,
        extra={"max_length": args.max_length, "method": args.method, **recipe, "pooling": pooling_of(model),
               "epochs_run": len(run["history"]), "best_epoch": run["best_epoch"],
               "split": split.sizes(), "train_args": args.record(), "resumed_from_step": resumed_from,
               "steps": run["step"], "train_seconds": sum(h["train_seconds"] for h in run["history"])})
    out_dir = save_classifier(model, tokenizer, manifest, Path(args.output_dir))
    manifest = _calibrate(out_dir, split) or manifest
    return TrainResult(manifest, out_dir, run["history"], resumed_from, list(held_out), preds)


def _calibrate(out_dir: Path, split: Split) -> Manifest | None:
    """Temperature and abstention fitted on the dev rows and the out-of-scope examples
    (ml.abstention), written into the artifact's manifest; None when the dev rows cannot."""
    from ml.abstention import calibrate_artifact
    from ml.registry import Registry

    try:
        return calibrate_artifact(out_dir, split.dev + split.oos, train_texts=[t for t, _ in split.train],
                                  train_labels=[label for _, label in split.train],
                                  registry=Registry())
    except ValueError as exc:
        log.warning("no calibration for %s: %s", out_dir, exc)
        return None


# -- command line -----------------------------------------------------------------------
def _print_progress(event: TrainingEvent) -> None:
    if isinstance(event, TrainingStarted):
        print(f"start: {event.split} labels={len(event.labels)} steps={event.total_steps} "
              f"resumed_from_step={event.resumed_from_step} on {event.device} x{event.processes}", flush=True)
    elif isinstance(event, StepDone):
        print(f"epoch {event.epoch} step {event.step}/{event.total_steps} loss {event.loss:.4f}", flush=True)
    elif isinstance(event, EpochDone) and event.dev:
        print(f"epoch {event.epoch}: train_loss {event.train_loss:.4f} dev acc "
              f"{event.dev['accuracy']:.4f} macro_f1 {event.dev['macro_f1']:.4f} "
              f"({event.train_samples / max(event.train_seconds, 1e-9):.1f} samples/s)", flush=True)
    elif isinstance(event, TrainingDone):
        print(f"done: {event.artifact_dir} {json.dumps(event.metrics)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: fine-tune a classifier and print progress and the test report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="CSV (text,label) or JSONL file")
    parser.add_argument("--role", required=True, help="registry role, e.g. intent or sentiment")
    parser.add_argument("--out", required=True, help="artifact directory to write")
    parser.add_argument("--method", choices=METHODS, default="full")
    add_cli_flags(parser, "classifier", defaults=True)
    parser.add_argument("--labels", default=None, help="comma-separated expected labels")
    parser.add_argument("--test-data", default=None, help="held-out test file (else 10%% of data)")
    parser.add_argument("--base-model", default=None, help="encoder folder (default: bundled MiniLM)")
    parser.add_argument("--parent-version", default=None)
    parser.add_argument("--checkpoint-dir", default=None)
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    extra = {"base_model": ns.base_model} if ns.base_model else {}
    knobs = {k: v for k, v in vars(ns).items() if k in ClassifierTrainArgs.__dataclass_fields__ and k != "base_model"}
    knobs.update(labels=ns.labels.split(",") if ns.labels else None, output_dir=ns.out, **extra)
    try:
        result = train_classifier(ClassifierTrainArgs(**knobs), progress=_print_progress)
    except DatasetInvalid as exc:
        print(json.dumps(exc.report.to_dict(), indent=2), file=sys.stderr)
        return 2
    metrics = {k: v for k, v in result.manifest.metrics.items() if k != "dev"}
    print(json.dumps({"version": result.manifest.version, "metrics": metrics}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
