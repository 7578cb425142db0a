"""Text classifiers behind one ``predict(texts)`` interface (intent, sentiment).

Three implementations, from no data to most data:

- ``ZeroShotClassifier``: label descriptions only, scored by embedding similarity.
- ``FewShotClassifier``: a logistic-regression head on frozen embeddings (tens of examples).
- ``SequenceClassifier``: a fine-tuned transformer (full or LoRA), optionally int8 on CPU.

Apps type against the ``Classifier`` protocol and never see which one serves.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ml.artifacts import ArtifactError, Manifest, atomic_write, write_manifest
from ml.calibration import softmax
from ml.compute_lane import ComputeLane
from ml.dynamic_batch import BatchStats, batcher_of
from ml.logistic import fit_logistic_head
from ml.ood import Abstention

if TYPE_CHECKING:
    from ml.registry import Registry

HEAD_FILE = "head.safetensors"
# Texts per forward pass on CPU (see ml.embeddings.CPU_MICRO_BATCH, same measurement and
# override): a MiniLM classifier ran 1.2x (fp32) to 1.4x (int8) faster at 16 than at 64.
CPU_MICRO_BATCH = int(os.environ.get("TRELLIS_CPU_MICRO_BATCH", "16"))
DEFAULT_MAX_LENGTH = 128  # tokens; headlines and chat turns are < 64, so 128 truncates almost none


@dataclass
class Prediction:
    """One classified text.

    Attributes:
        label: the most probable label.
        confidence: its probability (0..1); apps hand off or flag below a threshold.
        probs: label -> probability over every label, summing to 1.
        abstained: the text looks out of scope ("not mine"): its in-scope score is below
            the version's abstention threshold (``label`` is still the best guess).
        ood_score: 1 - the in-scope score (``ml.ood``), higher is more out of scope; None
            when the version has no abstention rule.
    """

    label: str
    confidence: float
    probs: dict[str, float]
    abstained: bool = False
    ood_score: float | None = None


@runtime_checkable
class Classifier(Protocol):
    """What apps get from ``registry.get("intent" | "sentiment")``."""

    labels: list[str]

    def predict(self, texts: Sequence[str], *, batch_size: int = 64) -> list[Prediction]: ...


class TextEmbedder(Protocol):
    """The part of ``ml.embeddings.Embedder`` the embedding-based classifiers use."""

    dim: int

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray: ...


class LaneBatchedPredict:
    """Adds ``apredict``: ``predict`` on the compute lane, batched with concurrent callers.

    ``predict`` itself keeps running on the caller's thread (Celery tasks, scripts).

    Attributes:
        lane: the compute lane of ``apredict``; None means the process-wide one.
        version: the artifact version (set by the registry loader), for logs and stats.
    """

    lane: ComputeLane | None = None
    version: str = ""

    def predict(self, texts: Sequence[str], *, batch_size: int = 64) -> list[Prediction]:
        raise NotImplementedError

    async def apredict(self, texts: Sequence[str]) -> list[Prediction]:
        """Classifies texts on the compute lane; one Prediction per text, in input order.

        Raises:
            TypeError: ``texts`` is one string or holds a non-string (nothing ran).
        """
        return await batcher_of(self, self.predict).submit(texts)

    def batch_stats(self) -> BatchStats:
        """Counters of ``apredict``'s batcher (batches run, requests, texts)."""
        return batcher_of(self, self.predict).stats


def _predictions(labels: Sequence[str], probs: np.ndarray) -> list[Prediction]:
    best = probs.argmax(axis=1)
    rows = probs.tolist()  # one C-level conversion instead of n*C numpy scalar reads
    return [
        Prediction(labels[b], row[b], dict(zip(labels, row, strict=True)))
        for b, row in zip(best.tolist(), rows, strict=True)
    ]


def _check_texts(texts: Sequence[str], batch_size: int) -> None:
    if isinstance(texts, str):
        raise TypeError("predict() takes a sequence of texts, not one string")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def configure_calibration(classifier: CalibratedClassifier, path: Path, manifest: Manifest) -> None:
    """Sets the temperature and abstention rule of a loaded classifier from its manifest.

    Reads ``extra["calibration"]["temperature"]`` and ``extra["abstention"]`` (see
    ``ml.abstention``); a version without them predicts as trained and never abstains.

    Raises:
        ArtifactError: the entries are malformed or the kNN reference file is missing.
    """
    calibration = manifest.extra.get("calibration") or {}
    try:
        temperature = float(calibration.get("temperature", 1.0))
        if not temperature > 0:
            raise ValueError(f"calibration temperature must be > 0, got {temperature}")
        classifier.calibration_temperature = temperature
        classifier.abstention = Abstention.from_manifest(path, manifest.extra)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{manifest.kind} at {path}: {exc}") from exc


class CalibratedClassifier(LaneBatchedPredict):
    """Temperature-scaled probabilities and abstention on top of ``logits_and_features``.

    Attributes:
        calibration_temperature: logits are divided by it before the softmax (1: as trained).
        abstention: the out-of-scope rule (``ml.ood.Abstention``), or None: never abstain.
    """

    labels: list[str]
    calibration_temperature: float = 1.0
    abstention: Abstention | None = None

    def logits_and_features(
        self, texts: Sequence[str], *, batch_size: int = 64, with_features: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw logits ``(n, labels)`` and, if asked, the features kNN abstention compares."""
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Calibrated probabilities, shape ``(len(texts), len(labels))``, float32, input order."""
        logits, _ = self.logits_and_features(texts, batch_size=batch_size)
        return softmax(logits, self.calibration_temperature)

    def predict(self, texts: Sequence[str], *, batch_size: int = 64) -> list[Prediction]:
        """Classifies texts; one Prediction per text, in input order, abstention applied."""
        rule = self.abstention
        logits, features = self.logits_and_features(
            texts, batch_size=batch_size, with_features=rule is not None and rule.needs_features)
        probs = softmax(logits, self.calibration_temperature)
        predictions = _predictions(self.labels, probs)
        if rule is not None:
            rule.apply(predictions, probs, features)
        return predictions


# -- fine-tuned transformer ------------------------------------------------------------


class _LinearHeadClassifier(CalibratedClassifier):
    """``softmax(embed(text) @ weight.T + bias)`` over frozen, unit-length embeddings.

    Args:
        embedder: gives the features.
        labels: label names in row order of ``weight``.
        weight: ``(len(labels), dim)``.
        bias: ``(len(labels),)``.
    """

    def __init__(self, embedder: TextEmbedder, labels: Sequence[str], weight: np.ndarray, bias: np.ndarray) -> None:
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        bias = np.ascontiguousarray(bias, dtype=np.float32)
        if weight.shape != (len(labels), embedder.dim) or bias.shape != (len(labels),):
            raise ValueError(
                f"head shapes {weight.shape}/{bias.shape} do not fit {len(labels)} labels x {embedder.dim} dims"
            )
        self.embedder = embedder
        self.labels = list(labels)
        self.weight = weight
        self.bias = bias

    def logits_and_features(
        self, texts: Sequence[str], *, batch_size: int = 64, with_features: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``embed(text) @ weight.T + bias``; the features are the embeddings."""
        _check_texts(texts, batch_size)
        if len(texts) == 0:
            return np.empty((0, len(self.labels)), dtype=np.float32), np.empty((0, self.embedder.dim), np.float32)
        embeddings = self.embedder.embed(texts, batch_size=batch_size)
        return embeddings @ self.weight.T + self.bias, embeddings


class ZeroShotClassifier(_LinearHeadClassifier):
    """Scores each label by the cosine similarity of the text to the label's description.

    Args:
        embedder: gives unit-length vectors.
        label_descriptions: label -> description (or several; their mean vector is used).
        temperature: softmax temperature over cosines; 0.05 turns a 0.1 cosine gap into a
            ~7x probability ratio, which matches how far apart MiniLM cosines sit.
    """

    def __init__(
        self,
        embedder: TextEmbedder,
        label_descriptions: Mapping[str, str | Sequence[str]],
        temperature: float = 0.05,
    ) -> None:
        if not label_descriptions:
            raise ValueError("zero-shot classification needs at least one label description")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        labels = list(label_descriptions)
        prototypes = []
        for label in labels:  # descriptions are embedded once, here
            desc = label_descriptions[label]
            mean = embedder.embed([desc] if isinstance(desc, str) else list(desc)).mean(axis=0)
            prototypes.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        self.temperature = temperature
        self.prototypes = np.stack(prototypes)  # (labels, dim), unit rows
        # cosine / temperature is a linear head with weight prototypes / T and no bias.
        super().__init__(embedder, labels, self.prototypes / temperature, np.zeros(len(labels)))


def load_zeroshot_classifier(path: Path, manifest: Manifest, registry: Registry) -> ZeroShotClassifier:
    """Registry loader for ``zeroshot-classifier`` artifacts (uses the serving embedder).

    Args:
        path: the artifact directory (holds only the manifest).
        manifest: ``extra.label_descriptions`` (label -> text), optional ``extra.temperature``;
            ``labels`` (if set) fixes the label order.
        registry: gives the ``embedder`` role.

    Returns:
        The classifier.
    """
    descriptions = manifest.extra.get("label_descriptions")
    if not isinstance(descriptions, dict) or not descriptions:
        raise ArtifactError(f"zeroshot-classifier at {path} lacks extra.label_descriptions")
    order = list(manifest.labels) or list(descriptions)
    missing = [label for label in order if label not in descriptions]
    if missing:
        raise ArtifactError(f"zeroshot-classifier at {path}: no description for {missing}")
    classifier = ZeroShotClassifier(
        registry.get("embedder"),
        {label: descriptions[label] for label in order},
        temperature=float(manifest.extra.get("temperature", 0.05)),
    )
    classifier.version = manifest.version
    configure_calibration(classifier, path, manifest)
    return classifier




class FewShotClassifier(_LinearHeadClassifier):
    """Multinomial logistic regression on frozen embeddings; see ``fit``."""

    @classmethod
    def fit(
        cls,
        embedder: TextEmbedder,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        epochs: int = 100,
        l2: float | None = None,
        seed: int = 0,
    ) -> FewShotClassifier:
        """Trains the head full-batch with L-BFGS (the loss is convex; < 1 s for 10k rows).

        Classes are weighted by ``n / (classes * count)`` so a rare intent is not drowned
        by a frequent one.

        Args:
            embedder: gives the features (frozen).
            texts: training texts.
            labels: their labels; label order of the head is sorted label names.
            epochs: L-BFGS iterations over the full batch.
            l2: weight penalty on the mean loss; default ``1 / (2 * ml.logistic.FEWSHOT_C * rows)``, the
                penalty of scikit-learn's ``C`` per row: strong for a handful of examples
                (50 rows: 1e-3), weak for thousands. A fixed 1e-3 under-fit large sets:
                BANKING77 (7,871 rows, 67 intents) test accuracy 0.865 with it, 0.937 with
                the default, as a scikit-learn logistic regression with C=10 (0.934).
            seed: seeds the initial weights.

        Returns:
            The trained classifier.
        """
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        names = sorted(set(labels))
        if len(names) < 2:
            raise ValueError("few-shot training needs at least two distinct labels")
        index = {name: i for i, name in enumerate(names)}
        x = np.ascontiguousarray(embedder.embed(texts), dtype=np.float32)
        weight, bias = fit_logistic_head(x, [index[label] for label in labels], len(names), l2=l2,
                                         iterations=epochs, seed=seed)
        return cls(embedder, names, weight, bias)

    def save(self, directory: Path, manifest: Manifest) -> Path:
        """Writes ``head.safetensors`` and the manifest (kind, labels, dim filled in).

        The head is written to a temporary file and renamed; the manifest goes last, so a
        directory with a manifest is always complete.

        Args:
            directory: the artifact directory (created if needed).
            manifest: role, version, metrics, ...; ``kind``/``labels`` are overwritten.

        Returns:
            The manifest path.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"weight": torch.from_numpy(self.weight), "bias": torch.from_numpy(self.bias)}
        atomic_write(directory / HEAD_FILE, lambda tmp: save_file(tensors, str(tmp)))
        full = dataclasses.replace(
            manifest,
            kind="fewshot-classifier",
            labels=list(self.labels),
            extra={**manifest.extra, "embedding_dim": int(self.weight.shape[1])},
        )
        return write_manifest(directory, full)


def load_fewshot_classifier(path: Path, manifest: Manifest, registry: Registry) -> FewShotClassifier:
    """Registry loader for ``fewshot-classifier`` artifacts (uses the serving embedder).

    Args:
        path: the artifact directory with ``head.safetensors``.
        manifest: ``labels`` in head order.
        registry: gives the ``embedder`` role.

    Returns:
        The classifier.

    Raises:
        ArtifactError: the head is missing or does not fit the embedder or labels.
    """
    head = Path(path) / HEAD_FILE
    if not head.is_file():
        raise ArtifactError(f"fewshot-classifier at {path} lacks {HEAD_FILE}")
    tensors = load_file(str(head))
    embedder = registry.get("embedder")
    try:
        classifier = FewShotClassifier(embedder, manifest.labels, tensors["weight"].numpy(), tensors["bias"].numpy())
    except (KeyError, ValueError) as exc:
        raise ArtifactError(f"fewshot-classifier at {path}: {exc}") from exc
    classifier.version = manifest.version
    configure_calibration(classifier, path, manifest)
    return classifier
