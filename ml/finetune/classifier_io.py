"""Classifier artifacts in and out: atomic save, plain load, batched prediction, evaluation.

``evaluate_artifact`` is the promotion gate's measure: candidate and active version are
each scored on the same held-out rows with ``ml.metrics.classification_report``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ml import devices
from ml.artifacts import Manifest, atomic_replace_dir, read_manifest, write_manifest
from ml.finetune.data import Row
from ml.metrics import classification_report


def predict_texts(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str],
                  labels: Sequence[str], *, max_length: int, batch_size: int = 64) -> list[str]:
    """Labels for ``texts``: batched, length-sorted, under ``inference_mode``.

    Args:
        model: a sequence classifier (plain or peft) whose head order is ``labels``.
        tokenizer: its tokenizer.
        texts: inputs.
        labels: class names in head order.
        max_length: tokens per text.
        batch_size: texts per forward pass (64 x 64 tokens is ~10 MB of MiniLM activations).

    Returns:
        One label per text, in input order.
    """
    info = devices.current()
    device = next(model.parameters()).device
    # Sorting by length makes each batch pad to similar lengths (less wasted compute).
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[str] = [""] * len(texts)
    was_training = model.training
    model.eval()
    with devices.inference_context(info):
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt").to(device)
            best = model(**enc).logits.argmax(dim=-1).cpu().tolist()
            for i, k in zip(idx, best, strict=True):
                out[i] = labels[k]
    model.train(was_training)
    return out


def report_on(model: torch.nn.Module, tokenizer: Any, rows: Sequence[Row], labels: list[str],
              *, max_length: int, batch_size: int = 64) -> tuple[dict[str, Any], list[str]]:
    """Classification report of ``model`` on ``rows`` and its predictions."""
    preds = predict_texts(model, tokenizer, [t for t, _ in rows], labels,
                          max_length=max_length, batch_size=batch_size)
    return classification_report([label for _, label in rows], preds, labels), preds


def save_classifier(model: Any, tokenizer: Any, manifest: Manifest,
                    out_dir: Path) -> Path:
    """Writes a classifier artifact: weights (safetensors), tokenizer, manifest last.

    Everything goes to a temporary sibling directory that is then renamed, so readers see
    either the previous artifact or the complete new one. A plain model writes
    ``config.json`` + ``model.safetensors``; a peft model ``adapter_config.json`` +
    ``adapter_model.safetensors`` (LoRA weights and the head).

    Args:
        model: the trained model (a transformers ``PreTrainedModel`` or a ``PeftModel``).
        tokenizer: its tokenizer.
        manifest: what the directory holds.
        out_dir: the artifact directory (replaced if present).

    Returns:
        ``out_dir``.
    """
    def write(staging: Path) -> None:
        model.save_pretrained(str(staging), safe_serialization=True)
        (staging / "README.md").unlink(missing_ok=True)  # peft's empty model card
        tokenizer.save_pretrained(str(staging))
        write_manifest(staging, manifest)

    return atomic_replace_dir(out_dir, write)


def evaluate_artifact(artifact_dir: str | Path, rows: Sequence[Row], *,
                      batch_size: int = 64) -> dict[str, Any]:
    """Classification report of a saved classifier on ``rows``.

    Loads through ``ml.registry.Registry().load_artifact``: the loader that serves the
    model in production, so the gate judges exactly what would be served.

    Args:
        artifact_dir: an ``hf-classifier`` or ``lora-classifier`` directory.
        rows: held-out ``(text, label)`` rows.
        batch_size: texts per forward pass.

    Returns:
        ``ml.metrics.classification_report`` over the manifest's labels (plus any gold
        label the model does not know, which then counts as an error).
    """
    path = Path(artifact_dir)
    manifest = read_manifest(path)
    texts = [t for t, _ in rows]
    gold = [label for _, label in rows]
    from ml.registry import Registry

    classifier = Registry().load_artifact(path)
    preds = [p.label for p in classifier.predict(texts, batch_size=batch_size)]
    labels = list(manifest.labels) + sorted(set(gold) - set(manifest.labels))
    return classification_report(gold, preds, labels)
