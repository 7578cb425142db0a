"""Out-of-scope scores, abstention thresholds and the threshold curve.

Three scorers give every text an **in-scope score** in [0, 1] (higher: more likely one of the
model's classes); a text is abstained on ("not mine") when its score is below the threshold:

- ``max_prob``: the calibrated probability of the best class.
- ``knn``: the cosine similarity of the text's features to its nearest training texts
  (mean over ``k``, clipped to [0, 1]); far from everything the model was trained on means
  out of scope, however confident the head is.
- ``knn_max_prob``: ``BLEND_KNN_WEIGHT * knn + (1 - BLEND_KNN_WEIGHT) * max_prob``: near the
  training texts *and* sure of one class.
- ``knn_max_prob_oos``: where the user gave out-of-scope examples (rows labelled ``oos``).
  ``c`` is the similarity to the nearest training text *of the predicted class* and ``s`` to
  the nearest out-of-scope example; the score is ``BLEND_KNN_WEIGHT * c + (1 - BLEND_KNN_WEIGHT)
  * max_prob - OOS_PENALTY * max(0, s - c + OOS_MARGIN)``: a question about as close to a known
  "not mine" question as to the class it would be answered with is pushed out. (Rules fitted
  before the training labels were stored read any class's nearest text and the plain
  ``oos_penalty * s``.)

``ml.ood_threshold.choose_threshold`` picks, on held-out rows (in-scope dev rows plus rows labelled with the
out-of-scope label), the threshold that catches the most out-of-scope rows while in-scope
accuracy falls by at most ``max_accuracy_drop``; without out-of-scope rows it keeps a fixed
share of in-scope rows. ``Prediction.ood_score`` is ``1 - score`` (higher: more out of scope).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ml.classify import Prediction

OOS_LABEL = "oos"
METHODS = ("max_prob", "knn", "knn_max_prob", "knn_max_prob_oos")
NEEDS_REFERENCE = ("knn", "knn_max_prob", "knn_max_prob_oos")  # scorers that read the training features
NEEDS_OOS_REFERENCE = ("knn_max_prob_oos",)  # scorers that also read the out-of-scope examples' features
# Neighbours averaged by ``knn``. Measured on BANKING77 leave-10-intents-out (frozen MiniLM,
# bench/eval_ood.py): held-out AUROC 0.901 at k=1, 0.896 at 5, 0.883 at 10; a class with only a
# few examples also makes a large k average over other classes' rows.
KNN_K = 1
# Share of ``knn`` in ``knn_max_prob``. Measured on the same protocol (frozen MiniLM few-shot,
# threshold chosen on dev): weight 0.75 -> test AUROC 0.907, out-of-scope recall 0.660 at a 3.1
# point in-scope accuracy drop; knn alone 0.901, 0.630 at 4.3 points; 0.5 -> 0.877; 0.25 -> 0.847.
# (``fit_abstention`` keeps the scorer with the best held-out recall within the accuracy budget.)
BLEND_KNN_WEIGHT = 0.75
# Tried on the same protocol and not kept (test AUROC; best recall within 3 points on test):
# Mahalanobis distance to the class means (shared covariance; plain / "relative", minus the
# distance to one global Gaussian) on frozen MiniLM 0.796 / 0.894 (0.33 / 0.43), on frozen
# mpnet 0.849 / 0.914 (0.36 / 0.55), on mean-pooled fine-tuned MiniLM 0.884 / 0.896 (0.51);
# a logistic in-vs-out detector fitted on the out-of-scope examples (outlier exposure)
# catches the intents it saw but only 2-11% of unseen ones (AUROC 0.72-0.89). knn_max_prob
# stays best: 0.925 (0.62) frozen MiniLM, 0.919 (0.59) frozen mpnet, 0.904 (0.54) fine-tuned.
# ``knn_max_prob_oos``: OOS_PENALTY and OOS_MARGIN chosen on BANKING77 leave-10-intents-out splits
# of seeds 1-3 (frozen MiniLM few-shot head, 5 held-out intents give examples) by mean out-of-scope
# recall at the threshold chosen on dev: the earlier rule (any class's nearest text, plain
# penalty 0.45 x s) 0.701; the predicted class's nearest text alone 0.719; the relative penalty
# max(0, s - c + margin) at weight 1.0: margin 0.1 0.742 with any class, 0.753 with the predicted
# class (margin 0.15 0.748, 0.2 0.728; weight 0.5 0.728, 2.0 0.732; no margin 0.682). On the
# four splits not used to choose them (seeds 4-6, 42): 0.731 -> 0.759 at 2.6 -> 2.9 points of
# in-scope accuracy, unseen-intent recall 0.512 -> 0.583, AUROC 0.952 -> 0.953.
OOS_PENALTY = 1.0
OOS_MARGIN = 0.1
EMBEDDINGS_FILE = "ood_train_embeddings.npy"
OOS_EMBEDDINGS_FILE = "ood_oos_embeddings.npy"  # features of the out-of-scope examples
LABELS_FILE = "ood_train_labels.npy"  # class index of each reference row (int16)
# kNN reference rows kept (float16, 384-d: 20k rows = 15 MB); more are subsampled.
MAX_KNN_ROWS = 20_000
# Texts scored against the reference rows at once: 256 x 20k float32 sims = 20 MB.
KNN_CHUNK = 256


def max_prob_scores(probs: np.ndarray) -> np.ndarray:
    """In-scope score of ``max_prob``: each row's largest probability."""
    probs = np.asarray(probs, dtype=np.float32)
    return probs.max(axis=1) if len(probs) else np.empty(0, dtype=np.float32)


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity becomes a dot product)."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def knn_scores(features: np.ndarray, reference: np.ndarray, *, k: int = KNN_K) -> np.ndarray:
    """In-scope score of ``knn``: mean cosine similarity to the ``k`` nearest reference rows.

    Args:
        features: ``(n, dim)`` features of the texts to score (any length; normalised here).
        reference: ``(m, dim)`` unit-length training features.
        k: neighbours averaged (fewer when ``m < k``).

    Returns:
        ``(n,)`` scores clipped to [0, 1].
    """
    features = unit_rows(features)
    reference = np.asarray(reference, dtype=np.float32)
    if len(features) == 0 or len(reference) == 0:
        return np.zeros(len(features), dtype=np.float32)
    k = max(1, min(k, len(reference)))
    out = np.empty(len(features), dtype=np.float32)
    for start in range(0, len(features), KNN_CHUNK):
        sims = features[start:start + KNN_CHUNK] @ reference.T
        top = np.partition(sims, len(reference) - k, axis=1)[:, len(reference) - k:]
        out[start:start + KNN_CHUNK] = top.mean(axis=1)
    return np.clip(out, 0.0, 1.0)


def knn_max_prob_scores(probs: np.ndarray, features: np.ndarray, reference: np.ndarray, *,
                        k: int = KNN_K, knn_weight: float = BLEND_KNN_WEIGHT) -> np.ndarray:
    """In-scope score of ``knn_max_prob``: a weighted mean of ``knn`` and ``max_prob``."""
    knn = knn_scores(features, reference, k=k)
    return np.clip(knn_weight * knn + (1.0 - knn_weight) * max_prob_scores(probs), 0.0, 1.0)


def nearest_similarity(features: np.ndarray, reference: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
    """Cosine similarity of each row to its nearest reference row (-1 without any).

    Args:
        features: ``(n, dim)`` features (any length; normalised here).
        reference: ``(m, dim)`` unit-length features.
        exclude_self: row ``i`` of ``features`` is row ``i`` of ``reference`` and must not count
            as its own neighbour (scoring the examples themselves).
    """
    features = unit_rows(features)
    reference = np.asarray(reference, dtype=np.float32)
    out = np.full(len(features), -1.0, dtype=np.float32)
    if len(features) == 0 or len(reference) == 0:
        return out
    for start in range(0, len(features), KNN_CHUNK):
        sims = features[start:start + KNN_CHUNK] @ reference.T
        if exclude_self:
            rows = np.arange(len(sims))
            sims[rows, start + rows] = -1.0
        out[start:start + KNN_CHUNK] = sims.max(axis=1)
    return out


def class_knn_scores(probs: np.ndarray, features: np.ndarray, reference: np.ndarray,
                     reference_labels: np.ndarray) -> np.ndarray:
    """Cosine similarity to the nearest reference row of each row's predicted class (0 without one).

    Args:
        probs: ``(n, classes)`` probabilities; the predicted class is the largest.
        features: ``(n, dim)`` features (any length; normalised here).
        reference: ``(m, dim)`` unit-length training features.
        reference_labels: ``(m,)`` class index of each reference row.
    """
    features = unit_rows(features)
    reference = np.asarray(reference, dtype=np.float32)
    out = np.zeros(len(features), dtype=np.float32)
    if len(features) == 0 or len(reference) == 0:
        return out
    predicted = np.asarray(probs).argmax(axis=1)
    labels = np.asarray(reference_labels)
    for start in range(0, len(features), KNN_CHUNK):
        sims = features[start:start + KNN_CHUNK] @ reference.T
        same = labels[None, :] == predicted[start:start + KNN_CHUNK, None]
        out[start:start + KNN_CHUNK] = np.where(same, sims, -1.0).max(axis=1)
    return np.clip(out, 0.0, 1.0)


def knn_max_prob_oos_scores(probs: np.ndarray, features: np.ndarray, reference: np.ndarray,
                            oos_reference: np.ndarray, *, k: int = KNN_K, knn_weight: float = BLEND_KNN_WEIGHT,
                            oos_penalty: float = OOS_PENALTY, oos_margin: float | None = OOS_MARGIN,
                            reference_labels: np.ndarray | None = None, exclude_self: bool = False) -> np.ndarray:
    """In-scope score of ``knn_max_prob_oos`` (see the module's docstring).

    ``reference_labels`` given: the kNN term reads the predicted class's rows only.
    ``oos_margin`` None: the penalty is ``oos_penalty`` times the nearest out-of-scope example's
    similarity (rules fitted before the margin existed). ``exclude_self``: see ``nearest_similarity``.
    """
    if reference_labels is None:
        knn = knn_scores(features, reference, k=k)
    else:
        knn = class_knn_scores(probs, features, reference, reference_labels)
    blend = knn_weight * knn + (1.0 - knn_weight) * max_prob_scores(probs)
    near_oos = np.maximum(nearest_similarity(features, oos_reference, exclude_self=exclude_self), 0.0)
    penalty = near_oos if oos_margin is None else np.maximum(near_oos - knn + oos_margin, 0.0)
    return np.clip(blend - oos_penalty * penalty, 0.0, 1.0)


def knn_max_prob_oos_held_out(probs: np.ndarray, features: np.ndarray, reference: np.ndarray,
                              oos_reference: np.ndarray, examples: np.ndarray,
                              reference_labels: np.ndarray | None = None) -> np.ndarray:
    """``knn_max_prob_oos`` of held-out rows among which are the out-of-scope examples themselves.

    ``examples`` flags those rows, in the order of ``oos_reference``; each of them is scored
    against the other examples (it would be its own nearest one), every other row as served.
    """
    examples = np.asarray(examples, dtype=bool)
    out = np.empty(len(features), dtype=np.float32)
    for rows, exclude_self in ((~examples, False), (examples, True)):
        out[rows] = knn_max_prob_oos_scores(probs[rows], features[rows], reference, oos_reference,
                                            reference_labels=reference_labels, exclude_self=exclude_self)
    return out


@dataclass
class Abstention:
    """A loaded classifier's abstention rule.

    Attributes:
        method: one of ``METHODS``.
        threshold: abstain when the in-scope score is below this (0..1).
        oos_label: the label abstained rows count as in reports.
        reference: unit-length training features (``NEEDS_REFERENCE`` methods only).
        k: neighbours of ``knn``.
        oos_reference: unit-length features of the out-of-scope examples (``NEEDS_OOS_REFERENCE``).
        reference_labels: class index of each reference row (``knn_max_prob_oos`` then reads the
            predicted class's rows); None for rules fitted without them.
        oos_margin: see ``knn_max_prob_oos_scores`` (None: a rule fitted before the margin existed).
    """

    method: str
    threshold: float
    oos_label: str = OOS_LABEL
    reference: np.ndarray | None = None
    k: int = KNN_K
    knn_weight: float = BLEND_KNN_WEIGHT
    oos_reference: np.ndarray | None = None
    oos_penalty: float = OOS_PENALTY
    reference_labels: np.ndarray | None = None
    oos_margin: float | None = OOS_MARGIN

    @property
    def needs_features(self) -> bool:
        return self.method in NEEDS_REFERENCE

    def scores(self, probs: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """In-scope scores of rows given their (calibrated) probabilities and features."""
        if self.method in NEEDS_REFERENCE:
            if features is None or self.reference is None:
                raise ValueError(f"{self.method} abstention needs features and reference embeddings")
            if self.method == "knn":
                return knn_scores(features, self.reference, k=self.k)
            if self.method in NEEDS_OOS_REFERENCE:
                if self.oos_reference is None:
                    raise ValueError(f"{self.method} abstention needs the out-of-scope examples' embeddings")
                return knn_max_prob_oos_scores(probs, features, self.reference, self.oos_reference, k=self.k,
                                               knn_weight=self.knn_weight, oos_penalty=self.oos_penalty,
                                               oos_margin=self.oos_margin, reference_labels=self.reference_labels)
            return knn_max_prob_scores(probs, features, self.reference, k=self.k, knn_weight=self.knn_weight)
        return max_prob_scores(probs)

    def apply(self, predictions: list[Prediction], probs: np.ndarray, features: np.ndarray | None) -> None:
        """Sets ``abstained`` and ``ood_score`` on ``predictions`` (in place)."""
        scores = self.scores(probs, features).tolist()
        for prediction, score in zip(predictions, scores, strict=True):
            prediction.ood_score = 1.0 - score
            prediction.abstained = score < self.threshold

    @classmethod
    def from_manifest(cls, path: Path, extra: dict[str, Any]) -> Abstention | None:
        """The rule in ``extra["abstention"]`` of the artifact at ``path``, if any.

        Raises:
            ValueError: the entry is malformed or its reference embeddings are missing.
        """
        entry = extra.get("abstention")
        if not entry:
            return None
        method = entry.get("method")
        if method not in METHODS:
            raise ValueError(f"unknown abstention method {method!r}; one of {METHODS}")
        threshold = check_threshold(entry.get("threshold"))
        reference = oos_reference = labels = None
        if method in NEEDS_REFERENCE:
            reference = unit_rows(_load(path, method, str(entry.get("embeddings_file", EMBEDDINGS_FILE))))
        if method in NEEDS_OOS_REFERENCE:
            oos_reference = unit_rows(_load(path, method, str(entry.get("oos_embeddings_file", OOS_EMBEDDINGS_FILE))))
            if entry.get("labels_file"):
                labels = _load(path, method, str(entry["labels_file"])).astype(np.int64)
                if reference is None or len(labels) != len(reference):
                    raise ValueError(f"{method} abstention: {entry['labels_file']} does not match the reference rows")
        margin = entry.get("oos_margin")
        return cls(method=method, threshold=threshold, oos_label=str(entry.get("oos_label", OOS_LABEL)),
                   reference=reference, k=int(entry.get("k", KNN_K)),
                   knn_weight=float(entry.get("knn_weight", BLEND_KNN_WEIGHT)), oos_reference=oos_reference,
                   oos_penalty=float(entry.get("oos_penalty", OOS_PENALTY)), reference_labels=labels,
                   oos_margin=None if margin is None else float(margin))


def _load(path: Path, method: str, name: str) -> np.ndarray:
    file = Path(path) / name
    if not file.is_file():
        raise ValueError(f"{method} abstention needs {file}, which is missing")
    return np.load(file, allow_pickle=False).astype(np.float32)


def check_threshold(value: Any) -> float:
    """``value`` as a threshold in [0, 1].

    Raises:
        ValueError: it is not a number in [0, 1].
    """
    if isinstance(value, bool):
        raise ValueError(f"threshold must be a number in [0, 1], got {value!r}")
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return threshold
