"""Choosing and judging an abstention threshold: the threshold curve, the threshold to serve,
AUROC, and the report of what abstention did on labelled rows (``ml.ood`` gives the scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.ood import OOS_LABEL

if TYPE_CHECKING:
    from ml.classify import Prediction

__all__ = ["MAX_ACCURACY_DROP", "auroc", "choose_threshold", "curve_point", "ood_report", "threshold_curve"]

# Largest in-scope accuracy fall (absolute, on held-out rows) a threshold may cost: 3 points.
MAX_ACCURACY_DROP = 0.03
# Without out-of-scope examples, keep this share of in-scope held-out rows.
KEEP_IN_SCOPE = 0.95
CURVE_POINTS = 51  # thresholds 0.00, 0.02, ..., 1.00: smooth on a chart, ~4 kB of manifest


def curve_point(threshold: float, scores: np.ndarray, correct: np.ndarray, is_oos: np.ndarray) -> dict[str, float]:
    """In-scope accuracy, out-of-scope precision and recall at one threshold.

    Args:
        threshold: abstain below it.
        scores: in-scope scores of all held-out rows.
        correct: whether the top label is right (ignored for out-of-scope rows).
        is_oos: whether the row is out of scope.

    Returns:
        ``threshold``, ``in_scope_accuracy`` (right and not abstained, over in-scope rows),
        ``oos_precision`` (out-of-scope share of abstentions; 1.0 when none),
        ``oos_recall`` (abstained share of out-of-scope rows; 0.0 when there are none),
        ``abstain_rate``.
    """
    abstain = scores < threshold
    in_scope = ~is_oos
    n_in, n_oos, n_abstain = int(in_scope.sum()), int(is_oos.sum()), int(abstain.sum())
    caught = int((abstain & is_oos).sum())
    return {
        "threshold": round(float(threshold), 6),
        "in_scope_accuracy": float((correct & ~abstain & in_scope).sum() / n_in) if n_in else 0.0,
        "oos_precision": caught / n_abstain if n_abstain else 1.0,
        "oos_recall": caught / n_oos if n_oos else 0.0,
        "abstain_rate": n_abstain / len(scores) if len(scores) else 0.0,
    }


def threshold_curve(scores: np.ndarray, correct: np.ndarray, is_oos: np.ndarray,
                    points: int = CURVE_POINTS) -> list[dict[str, float]]:
    """``curve_point`` at ``points`` evenly spaced thresholds from 0 to 1."""
    scores, correct, is_oos = _arrays(scores, correct, is_oos)
    return [curve_point(t, scores, correct, is_oos) for t in np.linspace(0.0, 1.0, points)]


def choose_threshold(scores: np.ndarray, correct: np.ndarray, is_oos: np.ndarray, *,
                     max_accuracy_drop: float = MAX_ACCURACY_DROP,
                     keep_in_scope: float = KEEP_IN_SCOPE) -> tuple[float, str]:
    """The threshold to serve, and how it was chosen.

    With out-of-scope rows: the threshold with the highest out-of-scope recall whose
    in-scope accuracy is at most ``max_accuracy_drop`` below the accuracy without abstention
    (ties: the lowest such threshold, which abstains least). Without: the
    ``1 - keep_in_scope`` quantile of in-scope scores, so ``keep_in_scope`` of them pass.

    Returns:
        ``(threshold, basis)`` where basis is ``"max_oos_recall"`` or ``"in_scope_quantile"``.
    """
    scores, correct, is_oos = _arrays(scores, correct, is_oos)
    in_scope_scores = scores[~is_oos]
    if not is_oos.any():
        if len(in_scope_scores) == 0:
            return 0.0, "in_scope_quantile"
        return float(np.clip(np.quantile(in_scope_scores, 1.0 - keep_in_scope), 0.0, 1.0)), "in_scope_quantile"
    base = curve_point(0.0, scores, correct, is_oos)["in_scope_accuracy"]
    # Recall only changes at an out-of-scope row's score; just above each is a candidate.
    candidates = np.unique(np.clip(np.concatenate([[0.0], np.nextafter(scores[is_oos], 2.0)]), 0.0, 1.0))
    best, best_recall = 0.0, -1.0
    for threshold in candidates:
        point = curve_point(float(threshold), scores, correct, is_oos)
        if base - point["in_scope_accuracy"] <= max_accuracy_drop + 1e-12 and point["oos_recall"] > best_recall:
            best, best_recall = float(threshold), point["oos_recall"]
    return best, "max_oos_recall"


def auroc(scores: np.ndarray, is_oos: np.ndarray) -> float | None:
    """Area under the ROC curve of "out of scope" ranked by a low in-scope score.

    Returns:
        AUROC in [0, 1] (0.5 is chance), or None without both kinds of rows.
    """
    scores, is_oos = np.asarray(scores, dtype=np.float64), np.asarray(is_oos, dtype=bool)
    if is_oos.all() or not is_oos.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(is_oos.astype(int), -scores))


def _arrays(scores: Any, correct: Any, is_oos: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool),
            np.asarray(is_oos, dtype=bool))


def ood_report(gold: Sequence[str], predictions: Sequence[Prediction], *, oos_label: str = OOS_LABEL,
               threshold: float | None = None) -> dict[str, Any]:
    """What abstention did on labelled rows (gold ``oos_label`` marks out-of-scope rows).

    Args:
        gold: gold labels.
        predictions: the classifier's predictions of the same rows.
        oos_label: the out-of-scope label.
        threshold: the threshold in force, for the report.

    Returns:
        ``in_scope_accuracy`` (abstaining on an in-scope row counts as wrong),
        ``in_scope_accuracy_without_abstention``, ``oos_precision``, ``oos_recall``,
        ``abstain_rate``, row counts, ``auroc`` and the ``curve`` over thresholds (empty
        when the predictions carry no ``ood_score``).
    """
    is_oos = np.array([g == oos_label for g in gold], dtype=bool)
    correct = np.array([p.label == g for p, g in zip(predictions, gold, strict=True)], dtype=bool)
    abstained = np.array([p.abstained for p in predictions], dtype=bool)
    n_in, n_oos, n_abstain = int((~is_oos).sum()), int(is_oos.sum()), int(abstained.sum())
    caught = int((abstained & is_oos).sum())
    report: dict[str, Any] = {
        "oos_label": oos_label, "threshold": threshold, "rows": len(gold), "in_scope_rows": n_in,
        "oos_rows": n_oos,
        "in_scope_accuracy": float((correct & ~abstained & ~is_oos).sum() / n_in) if n_in else None,
        "in_scope_accuracy_without_abstention": float((correct & ~is_oos).sum() / n_in) if n_in else None,
        "oos_precision": caught / n_abstain if n_abstain else None,
        "oos_recall": caught / n_oos if n_oos else None,
        "abstain_rate": n_abstain / len(gold) if len(gold) else 0.0,
        "auroc": None, "curve": [],
    }
    if predictions and all(p.ood_score is not None for p in predictions):
        scores = 1.0 - np.array([p.ood_score for p in predictions], dtype=np.float64)
        report["auroc"] = auroc(scores, is_oos)
        report["curve"] = threshold_curve(scores, correct, is_oos)
    return report
