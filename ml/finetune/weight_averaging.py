"""WiSE-FT: average the fine-tuned encoder with the one training started from, refit the head.

Wortsman et al. 2022 ("Robust fine-tuning of zero-shot models") end a full fine-tune at
``alpha * fine_tuned + (1 - alpha) * base`` for every encoder weight: the two models sit in
one low-loss basin, and the average keeps what the pretrained encoder knew about sentences the
training rows do not cover while still taking most of what the fine-tune learned. The
classification head was trained for the fine-tuned encoder only, so it is refitted as a
logistic regression on the averaged encoder's sentence vectors (``ml.finetune.probe_head``):
one forward pass over the training rows and an L-BFGS fit of a few seconds.

Full fine-tunes only: an adapter method's base weights are not changed by training.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from ml.finetune.data import Split

__all__ = ["average_with_base", "weight_average_and_refit"]

log = logging.getLogger(__name__)


def average_with_base(model: torch.nn.Module, base_dir: str | Path, alpha: float) -> int:
    """Moves the encoder of a full fine-tune to ``alpha * its weights + (1 - alpha) * base's``.

    Args:
        model: a transformers sequence classifier (no peft wrapper), on any device.
        base_dir: the encoder folder training started from.
        alpha: share of the fine-tuned weights, in [0, 1] (1 leaves the model as it is).

    Returns:
        The number of tensors averaged (the head, and weights the base lacks, are left alone).

    Raises:
        ValueError: ``alpha`` outside [0, 1], or no encoder weight matches the base's.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha!r}")
    from transformers import AutoModel

    started = time.perf_counter()
    encoder = getattr(model, model.base_model_prefix)
    base_state = AutoModel.from_pretrained(str(base_dir)).state_dict()  # nosec B615  # local folder
    averaged = 0
    with torch.no_grad():
        for name, tensor in encoder.state_dict().items():
            base = base_state.get(name)
            if base is None or base.shape != tensor.shape or not tensor.is_floating_point():
                continue
            tensor.mul_(alpha).add_(base.to(tensor.device, tensor.dtype), alpha=1.0 - alpha)
            averaged += 1
    if not averaged:
        raise ValueError(f"no encoder weight of the model matches {base_dir}")
    log.info("encoder averaged with its base (alpha %.2f, %d tensors) in %.1f s", alpha, averaged,
             time.perf_counter() - started)
    return averaged


def weight_average_and_refit(
    model: torch.nn.Module, tokenizer: Any, task: Any, split: Split, labels: list[str], *,
    base_dir: str | Path, alpha: float, seed: int, fine_tuned_dev: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """WiSE-FT at the end of a full fine-tune: average with the base, refit the head, score dev.

    Args:
        model: the fine-tuned classifier (best weights), changed in place.
        tokenizer: its tokenizer.
        task: the run's ``_ClassifierTask`` (training texts and targets, ``evaluate``).
        split: the run's split; with test rows, the fine-tune's own test scores are recorded too.
        labels: the head's labels.
        base_dir: the encoder training started from.
        alpha: share of the fine-tuned weights.
        seed: seeds the head's fit.
        fine_tuned_dev: the fine-tune's dev report (its best epoch's), None without dev rows.

    Returns:
        The manifest record (alpha, dev macro-F1 and held-out scores of the fine-tune before
        averaging) and the averaged model's dev report (None without dev rows).
    """
    from ml.finetune.classifier_io import report_on
    from ml.finetune.probe_head import init_head_from_probe

    args = task.args
    record: dict[str, Any] = {"alpha": alpha,
                              "dev_macro_f1_fine_tuned": fine_tuned_dev["macro_f1"] if fine_tuned_dev else None}
    if split.test:
        report, _ = report_on(model, tokenizer, split.test, labels, max_length=args.max_length,
                              batch_size=args.eval_batch_size)
        record["fine_tuned_held_out"] = {k: report[k] for k in ("accuracy", "macro_f1", "weighted_f1")}
    average_with_base(model, base_dir, alpha)
    if not init_head_from_probe(model, tokenizer, task.texts, task.targets, max_length=args.max_length,
                                device=task.device, balanced=args.class_weighting == "balanced", seed=seed):
        raise ValueError("weight averaging needs a head that is one Linear layer")
    after = task.evaluate(model)
    record["dev_macro_f1_averaged"] = after.score if after else None
    log.info("WiSE-FT alpha %.2f: dev macro-F1 %s -> %s", alpha, record["dev_macro_f1_fine_tuned"],
             record["dev_macro_f1_averaged"])
    return record, after.dev if after else None
