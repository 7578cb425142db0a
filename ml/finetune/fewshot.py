"""Few-shot classifiers: a linear head on frozen embeddings, trained in seconds.

The middle way between zero-shot (label descriptions only) and fine-tuning: a few dozen
labelled rows per class are enough, and training takes about a second on a CPU.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ml.artifacts import Manifest, new_version_id
from ml.classify import FewShotClassifier, TextEmbedder
from ml.finetune.classification import TrainResult
from ml.finetune.data import DatasetInvalid, Row, stratified_split, validate
from ml.metrics import classification_report


def train_fewshot(
    data: str | Path | Sequence[Row],
    *,
    role: str,
    output_dir: str | Path,
    embedder: TextEmbedder,
    seed: int = 42,
    parent_version: str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    job_key: str = "",
) -> TrainResult:
    """Validates, splits, fits the head on train+dev, evaluates on the test split, saves.

    Args:
        data: CSV/JSONL path or ``(text, label)`` rows.
        role: registry role of the result.
        output_dir: the artifact directory to write.
        embedder: frozen feature extractor (the serving embedder).
        seed: seeds the split and the head's initial weights.
        parent_version: recorded in the manifest.
        progress: called with ``start``, ``epoch`` and ``done`` events like the fine-tuner.
        job_key: key of the training job, written into the manifest.

    Returns:
        A TrainResult (history has one entry; test_rows are the held-out rows).

    Raises:
        DatasetInvalid: validation failed.
    """
    emit = progress or (lambda event: None)
    report = validate(list(data) if not isinstance(data, str | Path) else data)
    if not report.ok:
        raise DatasetInvalid(report)
    split = stratified_split(report.rows, dev_fraction=0.1, test_fraction=0.1, seed=seed)
    fit_rows = split.train + split.dev  # no early stopping to tune: the dev rows train too
    labels = sorted({label for _, label in report.rows})
    emit({"event": "start", "total_steps": 1, "split": split.sizes(), "labels": labels, "device": "cpu",
          "method": "fewshot", "resumed_from_step": 0})
    started = time.perf_counter()
    clf = FewShotClassifier.fit(embedder, [t for t, _ in fit_rows], [lab for _, lab in fit_rows], seed=seed)
    seconds = time.perf_counter() - started
    held_out = split.test or split.dev
    predicted = [p.label for p in clf.predict([t for t, _ in held_out])]
    metrics = classification_report([lab for _, lab in held_out], predicted, labels)
    majority = Counter(lab for _, lab in fit_rows).most_common(1)[0][0]
    metrics["majority_baseline_accuracy"] = (
        sum(lab == majority for _, lab in held_out) / len(held_out) if held_out else 0.0)
    metrics["evaluated_on"] = "test" if split.test else "dev"
    # L-BFGS reports no per-epoch loss, so none is shown.
    entry = {"epoch": 1, "train_loss": None, "dev": metrics, "train_seconds": seconds,
             "train_samples": len(fit_rows), "step": 1}
    emit({"event": "step", "epoch": 1, "step": 1, "total_steps": 1})
    emit({"event": "epoch", **entry, "best_epoch": 1, "early_stop": False})
    manifest = Manifest(role=role, kind="fewshot-classifier", version=new_version_id(role),
                        base_model="frozen embedder + linear head", task="text-classification",
                        labels=labels, data_hash=report.data_hash, metrics=metrics, parent_version=parent_version,
                        job_key=job_key,
                        extra={"method": "fewshot", "split": split.sizes(), "train_seconds": seconds})
    out = Path(output_dir)
    clf.save(out, manifest)
    emit({"event": "done", "artifact_dir": str(out), "version": manifest.version,
          "metrics": {k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1")}})
    return TrainResult(manifest=manifest, artifact_dir=out, history=[entry], test_rows=list(held_out),
                       test_predictions=predicted)
