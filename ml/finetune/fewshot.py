"""Few-shot classifiers: a linear head on frozen embeddings, trained in seconds.

The middle way between zero-shot (label descriptions only) and fine-tuning: a few dozen
labelled rows per class are enough, and training takes about a second on a CPU. The result
is calibrated and abstains on out-of-scope texts (``ml.abstention``).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml.abstention import apply_fit, fit_abstention, with_fit, write_reference
from ml.artifacts import Manifest, new_version_id
from ml.classify import FewShotClassifier, TextEmbedder
from ml.finetune.classifier_args import TrainResult
from ml.finetune.data import DatasetInvalid, Row, stratified_split, validate
from ml.finetune.events import EpochDone, Progress, StepDone, TrainingDone, TrainingStarted
from ml.metrics import classification_report
from ml.ood import OOS_LABEL
from ml.ood_threshold import ood_report


class CachedEmbedder:
    """An embedder that embeds each distinct text once (fit, calibration and kNN reuse them).

    Args:
        embedder: the embedder to wrap.
    """

    def __init__(self, embedder: TextEmbedder) -> None:
        self.embedder = embedder
        self.dim = embedder.dim
        self._seen: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if todo:
            for text, vector in zip(todo, self.embedder.embed(todo, batch_size=batch_size), strict=True):
                self._seen[text] = vector
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([self._seen[t] for t in texts]).astype(np.float32, copy=False)


def _halve(rows: Sequence[Row], seed: int) -> tuple[list[Row], list[Row]]:
    """Out-of-scope rows: half for choosing the threshold, half for the held-out report."""
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)  # noqa: S311 - seeded split, not a secret
    if len(shuffled) < 2:
        return shuffled, []
    return shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2:]


def train_fewshot(
    data: str | Path | Sequence[Row],
    *,
    role: str,
    output_dir: str | Path,
    embedder: TextEmbedder,
    seed: int = 42,
    parent_version: str | None = None,
    progress: Progress | None = None,
    job_key: str = "",
    oos_label: str = OOS_LABEL,
) -> TrainResult:
    """Validates, splits, fits the head on train, calibrates on dev, evaluates on test, saves.

    Rows labelled ``oos_label`` are out-of-scope examples, not a class: half of them join the
    dev rows on which the temperature and the abstention threshold are chosen
    (``ml.abstention.fit_abstention``), the other half join the test rows, where the report
    measures out-of-scope precision and recall (``metrics["abstention"]``).

    Args:
        data: CSV/JSONL path or ``(text, label)`` rows.
        role: registry role of the result.
        output_dir: the artifact directory to write.
        embedder: frozen feature extractor (the serving embedder).
        seed: seeds the split and the head's initial weights.
        parent_version: recorded in the manifest.
        progress: called with the typed events of ``ml.finetune.events``, like the fine-tuner.
        job_key: key of the training job, written into the manifest.
        oos_label: the out-of-scope label.

    Returns:
        A TrainResult (history has one entry; test_rows are the held-out rows, out-of-scope
        rows included; test_predictions are ``oos_label`` where the model abstained). The
        headline metrics are over in-scope rows, by top label; ``metrics["abstention"]``
        holds in-scope accuracy after abstention and out-of-scope precision and recall.

    Raises:
        DatasetInvalid: validation failed.
    """
    emit = progress or (lambda event: None)
    report = validate(list(data) if not isinstance(data, str | Path) else data, oos_label=oos_label)
    if not report.ok:
        raise DatasetInvalid(report)
    split = stratified_split(report.rows, dev_fraction=0.1, test_fraction=0.1, seed=seed)
    oos_dev, oos_test = _halve(report.oos_rows, seed)
    # The head is fitted on train only: the dev rows calibrate it, so they must be unseen.
    fit_rows = split.train if split.dev else split.train + split.dev
    labels = sorted({label for _, label in report.rows})
    emit(TrainingStarted(total_steps=1, steps_per_epoch=1, split=split.sizes(), labels=labels, device="cpu",
                         method="fewshot"))
    started = time.perf_counter()
    memo = CachedEmbedder(embedder)
    clf = FewShotClassifier.fit(memo, [t for t, _ in fit_rows], [lab for _, lab in fit_rows], seed=seed)
    seconds = time.perf_counter() - started
    fit = None
    if split.dev:
        fit = fit_abstention(clf, split.dev, oos_dev, [t for t, _ in fit_rows],
                             train_labels=[label for _, label in fit_rows], oos_label=oos_label, seed=seed)
        apply_fit(clf, fit)
    clf.embedder = embedder  # the memo served training; the test rows are embedded once anyway
    held_out = (split.test or split.dev) + oos_test
    gold = [lab for _, lab in held_out]
    predictions = clf.predict([t for t, _ in held_out])
    predicted = [oos_label if p.abstained else p.label for p in predictions]
    # The headline report judges the classes on in-scope rows (comparable with any version);
    # what abstention adds and costs is in metrics["abstention"].
    in_scope = [i for i, label in enumerate(gold) if label != oos_label]
    metrics = classification_report([gold[i] for i in in_scope], [predictions[i].label for i in in_scope], labels)
    if fit is not None:
        metrics["abstention"] = {k: v for k, v in ood_report(gold, predictions, oos_label=oos_label,
                                                              threshold=fit.threshold).items() if k != "curve"}
        metrics["calibration"] = fit.extra["calibration"]
    majority = Counter(lab for _, lab in fit_rows).most_common(1)[0][0]
    metrics["majority_baseline_accuracy"] = (
        sum(gold[i] == majority for i in in_scope) / len(in_scope) if in_scope else 0.0)
    metrics["evaluated_on"] = "test" if split.test else "dev"
    # L-BFGS reports no per-epoch loss, so none is shown.
    entry = {"epoch": 1, "train_loss": None, "dev": metrics, "train_seconds": seconds,
             "train_samples": len(fit_rows), "step": 1}
    emit(StepDone(epoch=1, step=1, total_steps=1))
    emit(EpochDone(epoch=1, step=1, train_loss=None, dev=metrics, train_seconds=seconds, train_samples=len(fit_rows),
                   best_epoch=1))
    manifest = Manifest(role=role, kind="fewshot-classifier", version=new_version_id(role),
                        base_model="frozen embedder + linear head", task="text-classification",
                        labels=labels, data_hash=report.data_hash, metrics=metrics, parent_version=parent_version,
                        job_key=job_key,
                        extra={"method": "fewshot", "split": {**split.sizes(), "oos_dev": len(oos_dev),
                                                              "oos_test": len(oos_test)},
                               "train_seconds": seconds})
    out = Path(output_dir)
    if fit is not None:
        write_reference(out, fit)  # before the manifest, which names it
        manifest = with_fit(manifest, fit)
    clf.save(out, manifest)
    emit(TrainingDone(artifact_dir=str(out), version=manifest.version,
                      metrics={k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1")}))
    return TrainResult(manifest=manifest, artifact_dir=out, history=[entry], test_rows=list(held_out),
                       test_predictions=predicted)
