"""Fitting calibration and abstention to a classifier, and storing them in its artifact.

``fit_abstention`` is the hook at the end of training: on held-out in-scope rows it fits a
temperature (``ml.calibration``), scores the held-out rows with every scorer of ``ml.ood``,
chooses each scorer's threshold and keeps the scorer that catches the most held-out
out-of-scope rows within the accuracy budget (then the better AUROC). ``calibrate_artifact``
does the same for any saved classifier version (the bundled zero-shot default included)
given labelled rows, and rewrites its manifest atomically. The manifest then holds:

- ``extra["calibration"] = {"temperature", "ece_before", "ece_after", "rows"}``
- ``extra["abstention"] = {"method", "threshold", "oos_label", "basis", "curve", "auroc",
  "dev", "k", "embeddings_file", "knn_weight", "oos_embeddings_file", "oos_penalty"}`` (``k`` and
  ``embeddings_file`` for the kNN scorers, whose training features are stored beside it as
  float16 ``ood_train_embeddings.npy``; ``knn_weight`` for the blends; ``oos_embeddings_file``
  (``ood_oos_embeddings.npy``: the out-of-scope examples' features), ``oos_penalty``, ``oos_margin``
  and, when the training labels were given, ``labels_file`` (``ood_train_labels.npy``: the class
  index of each reference row) for ``knn_max_prob_oos``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml import ood, ood_threshold
from ml.artifacts import ArtifactError, Manifest, atomic_write, read_manifest, write_manifest
from ml.calibration import calibrate, softmax

if TYPE_CHECKING:
    from ml.classify import CalibratedClassifier
    from ml.registry import Registry

Row = tuple[str, str]


@dataclass
class AbstentionFit:
    """What ``fit_abstention`` chose.

    Attributes:
        extra: the ``calibration`` and ``abstention`` manifest entries.
        reference: float16 unit-length training features when a kNN scorer won.
        oos_reference: float16 unit-length features of the out-of-scope examples when
            ``knn_max_prob_oos`` won.
        reference_labels: int16 class index of each ``reference`` row (-1: a label the model
            lacks) when ``knn_max_prob_oos`` won and the training labels were given.
    """

    extra: dict[str, Any]
    reference: np.ndarray | None = None
    oos_reference: np.ndarray | None = None
    reference_labels: np.ndarray | None = None
    scores: dict[str, list[float]] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.extra["abstention"]["method"])

    @property
    def threshold(self) -> float:
        return float(self.extra["abstention"]["threshold"])


def split_oos(rows: Sequence[Row], oos_label: str = ood.OOS_LABEL) -> tuple[list[Row], list[Row]]:
    """``(in_scope_rows, oos_rows)`` of labelled rows."""
    in_scope = [r for r in rows if r[1] != oos_label]
    return in_scope, [r for r in rows if r[1] == oos_label]


def _features(classifier: CalibratedClassifier, texts: Sequence[str], batch_size: int) -> np.ndarray:
    _, features = classifier.logits_and_features(list(texts), batch_size=batch_size, with_features=True)
    if features is None:
        raise ValueError(f"{type(classifier).__name__} gives no features for kNN abstention")
    return features


def fit_abstention(
    classifier: CalibratedClassifier,
    dev_rows: Sequence[Row],
    oos_rows: Sequence[Row] = (),
    train_texts: Sequence[str] = (),
    *,
    train_labels: Sequence[str] = (),
    oos_label: str = ood.OOS_LABEL,
    max_accuracy_drop: float = ood_threshold.MAX_ACCURACY_DROP,
    batch_size: int = 64,
    seed: int = 0,
) -> AbstentionFit:
    """Fits the temperature and the abstention rule of ``classifier`` on held-out rows.

    Args:
        classifier: a trained classifier (its current temperature is ignored: raw logits).
        dev_rows: held-out in-scope rows; rows whose label the model lacks are skipped.
        oos_rows: held-out out-of-scope rows (any label; they count as out of scope).
        train_texts: the texts the model was trained on; enables the ``knn`` scorer
            (subsampled to ``ood.MAX_KNN_ROWS``).
        train_labels: their labels, if known (``knn_max_prob_oos`` then reads the predicted
            class's nearest training text).
        oos_label: recorded as the label abstentions count as.
        max_accuracy_drop: in-scope accuracy a threshold may cost (absolute).
        batch_size: texts per forward pass.
        seed: seeds the subsample of ``train_texts``.

    Returns:
        The AbstentionFit.

    Raises:
        ValueError: no in-scope held-out row has a label the model knows, or ``train_labels``
            is not one label per training text.
    """
    if train_labels and len(train_labels) != len(train_texts):
        raise ValueError(f"{len(train_labels)} training labels for {len(train_texts)} training texts")
    index = {label: i for i, label in enumerate(classifier.labels)}
    known = [(t, label) for t, label in dev_rows if label in index and label != oos_label]
    if not known:
        raise ValueError("calibration needs held-out rows labelled with the model's own labels")
    texts = [t for t, _ in known] + [t for t, _ in oos_rows]
    use_knn = bool(train_texts) and bool(oos_rows)
    logits, features = classifier.logits_and_features(texts, batch_size=batch_size, with_features=use_knn)
    targets = np.array([index[label] for _, label in known], dtype=np.int64)
    n_in = len(known)
    calibration = calibrate(logits[:n_in], targets)
    probs = softmax(logits, calibration.temperature)
    is_oos = np.arange(len(texts)) >= n_in
    correct = np.zeros(len(texts), dtype=bool)
    correct[:n_in] = probs[:n_in].argmax(axis=1) == targets

    scores = {"max_prob": ood.max_prob_scores(probs)}
    reference = oos_reference = reference_labels = None
    if use_knn and features is not None:
        rows = list(range(len(train_texts)))
        if len(rows) > ood.MAX_KNN_ROWS:
            rows = random.Random(seed).sample(rows, ood.MAX_KNN_ROWS)  # noqa: S311 - not a secret
        reference = ood.unit_rows(_features(classifier, [train_texts[i] for i in rows], batch_size)).astype(np.float16)
        if train_labels:
            reference_labels = np.array([index.get(train_labels[i], -1) for i in rows], dtype=np.int16)
        oos_reference = ood.unit_rows(features[n_in:]).astype(np.float16)
        # Scored as served: against the float16 references the artifact will store.
        train32, oos32 = reference.astype(np.float32), oos_reference.astype(np.float32)
        scores["knn"] = ood.knn_scores(features, train32)
        scores["knn_max_prob"] = ood.knn_max_prob_scores(probs, features, train32)
        scores["knn_max_prob_oos"] = ood.knn_max_prob_oos_held_out(probs, features, train32, oos32, is_oos,
                                                                   reference_labels=reference_labels)
    aurocs = {method: ood_threshold.auroc(s, is_oos) for method, s in scores.items()}
    chosen = {m: ood_threshold.choose_threshold(s, correct, is_oos, max_accuracy_drop=max_accuracy_drop)
              for m, s in scores.items()}
    recalls = {m: ood_threshold.curve_point(chosen[m][0], np.asarray(s, np.float64), correct, is_oos)["oos_recall"]
               for m, s in scores.items()}
    # The scorer that catches the most held-out out-of-scope rows within the accuracy budget
    # (what the threshold is chosen for); then the better AUROC; max_prob when nothing differs.
    method = max(scores, key=lambda m: (recalls[m], aurocs[m] if aurocs[m] is not None else -1.0, m == "max_prob"))
    threshold, basis = chosen[method]
    abstention: dict[str, Any] = {
        "method": method, "threshold": threshold, "oos_label": oos_label, "basis": basis,
        "max_accuracy_drop": max_accuracy_drop, "auroc": aurocs,
        "dev": ood_threshold.curve_point(threshold, np.asarray(scores[method], np.float64), correct, is_oos),
        "curve": ood_threshold.threshold_curve(scores[method], correct, is_oos),
        "rows": {"in_scope": n_in, "oos": len(oos_rows)},
    }
    if method in ood.NEEDS_REFERENCE:
        abstention.update(k=ood.KNN_K, embeddings_file=ood.EMBEDDINGS_FILE)
        if method != "knn":
            abstention["knn_weight"] = ood.BLEND_KNN_WEIGHT
    else:
        reference = None
    if method in ood.NEEDS_OOS_REFERENCE:
        abstention.update(oos_embeddings_file=ood.OOS_EMBEDDINGS_FILE, oos_penalty=ood.OOS_PENALTY,
                          oos_margin=ood.OOS_MARGIN)
        if reference_labels is not None:
            abstention["labels_file"] = ood.LABELS_FILE
    else:
        oos_reference = reference_labels = None
    return AbstentionFit(extra={"calibration": calibration.to_manifest(), "abstention": abstention},
                         reference=reference, oos_reference=oos_reference, reference_labels=reference_labels,
                         scores={m: s.tolist() for m, s in scores.items()})


def apply_fit(classifier: CalibratedClassifier, fit: AbstentionFit) -> None:
    """Makes an in-memory classifier predict with ``fit`` (as it will after a reload)."""
    classifier.calibration_temperature = float(fit.extra["calibration"]["temperature"])
    entry = fit.extra["abstention"]
    def unit(rows: np.ndarray | None) -> np.ndarray | None:
        return None if rows is None else ood.unit_rows(rows.astype(np.float32))

    classifier.abstention = ood.Abstention(
        method=entry["method"], threshold=float(entry["threshold"]), oos_label=entry["oos_label"],
        reference=unit(fit.reference), k=int(entry.get("k", ood.KNN_K)),
        knn_weight=float(entry.get("knn_weight", ood.BLEND_KNN_WEIGHT)), oos_reference=unit(fit.oos_reference),
        oos_penalty=float(entry.get("oos_penalty", ood.OOS_PENALTY)),
        reference_labels=None if fit.reference_labels is None else fit.reference_labels.astype(np.int64),
        oos_margin=entry.get("oos_margin"))


def write_reference(directory: Path, fit: AbstentionFit) -> None:
    """Writes the reference features the fit's scorer reads (if any) atomically into ``directory``."""
    for rows, name, dtype in ((fit.reference, ood.EMBEDDINGS_FILE, np.float16),
                              (fit.oos_reference, ood.OOS_EMBEDDINGS_FILE, np.float16),
                              (fit.reference_labels, ood.LABELS_FILE, np.int16)):
        if rows is None:
            continue
        values = rows.astype(dtype)

        def write(tmp: Path, values: np.ndarray = values) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to a bare path
                np.save(fh, values, allow_pickle=False)

        atomic_write(Path(directory) / name, write)


def with_fit(manifest: Manifest, fit: AbstentionFit) -> Manifest:
    """A copy of ``manifest`` carrying the fit's calibration and abstention entries."""
    return dataclasses.replace(manifest, extra={**manifest.extra, **fit.extra})


def calibrate_artifact(
    artifact_dir: str | Path,
    rows: Sequence[Row],
    *,
    train_texts: Sequence[str] = (),
    train_labels: Sequence[str] = (),
    oos_label: str = ood.OOS_LABEL,
    registry: Registry | None = None,
) -> Manifest:
    """Fits calibration and abstention for a saved classifier and rewrites its manifest.

    The trainer's one-line hook after the artifact is written is
    ``calibrate_artifact(out_dir, split.dev + oos_rows, train_texts=[t for t, _ in split.train])``.
    The reference file (kNN) is written before the manifest, each atomically, so a reader
    sees either the old manifest or the new one with everything it names.

    Args:
        artifact_dir: a classifier artifact (any kind served through ``ml.classify``).
        rows: labelled held-out rows; ``oos_label`` rows are the out-of-scope examples.
        train_texts: the training texts, if known (enables ``knn``).
        train_labels: their labels, if known (see ``fit_abstention``).
        oos_label: the out-of-scope label.
        registry: loads the artifact (the process registry by default, which the embedding
            classifiers need for their embedder); its cached copy is updated in place.

    Returns:
        The new manifest.

    Raises:
        ArtifactError: not a classifier artifact.
        ValueError: no usable held-out rows.
    """
    path = Path(artifact_dir)
    manifest = read_manifest(path)
    if not manifest.kind.endswith("classifier"):
        raise ArtifactError(f"{path} holds a {manifest.kind}, not a classifier")
    if registry is None:
        from ml.registry import default_registry

        registry = default_registry()
    classifier = registry.load_artifact(path)
    in_scope, oos_rows = split_oos(rows, oos_label)
    fit = fit_abstention(classifier, in_scope, oos_rows, train_texts, train_labels=train_labels, oos_label=oos_label)
    write_reference(path, fit)
    updated = with_fit(manifest, fit)
    write_manifest(path, updated)
    apply_fit(classifier, fit)
    return updated


def set_threshold(artifact_dir: str | Path, threshold: Any, *, oos_label: str | None = None) -> Manifest:
    """Sets the abstention threshold in a classifier's manifest (atomically).

    A version never calibrated gets a ``max_prob`` rule (abstain below that confidence).

    Args:
        artifact_dir: the classifier artifact.
        threshold: the new threshold, a number in [0, 1].
        oos_label: replaces the recorded out-of-scope label when given.

    Returns:
        The new manifest (reload the classifier for it to take effect; see ``reload_calibration``).

    Raises:
        ValueError: the threshold is not in [0, 1].
        ArtifactError: not a classifier artifact.
    """
    value = ood.check_threshold(threshold)
    path = Path(artifact_dir)
    manifest = read_manifest(path)
    if not manifest.kind.endswith("classifier"):
        raise ArtifactError(f"{path} holds a {manifest.kind}, not a classifier")
    entry = dict(manifest.extra.get("abstention") or {"method": "max_prob", "oos_label": ood.OOS_LABEL,
                                                      "basis": "manual"})
    entry["threshold"] = value
    entry["edited"] = True
    if oos_label:
        entry["oos_label"] = oos_label
    updated = dataclasses.replace(manifest, extra={**manifest.extra, "abstention": entry})
    write_manifest(path, updated)
    return updated


def reload_calibration(registry: Registry, artifact_dir: str | Path) -> None:
    """Applies the manifest's calibration and abstention to the registry's loaded copy."""
    from ml.classify import configure_calibration

    path = Path(artifact_dir)
    configure_calibration(registry.load_artifact(path), path, read_manifest(path))
