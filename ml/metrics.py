"""Evaluation metrics: classification reports and ranking metrics (Recall@K, NDCG@K, MRR)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def classification_report(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class P/R/F1/support and the confusion matrix.

    Args:
        y_true: gold labels.
        y_pred: predicted labels, same length.
        labels: label order for the per-class entries and the matrix rows/columns.

    Returns:
        ``{"accuracy", "macro_f1", "weighted_f1", "per_class": {label: {...}},
        "confusion_matrix": [[...]], "labels": [...], "support": n}``; rows of the
        matrix are gold labels, columns predictions.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold labels but {len(y_pred)} predictions")
    labels = list(labels)
    n = len(y_true)
    if n == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0, "per_class": {},
                "confusion_matrix": [], "labels": labels, "support": 0}
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    support = np.asarray(s, dtype=float)
    present = support > 0  # macro over classes that occur in the gold set
    macro = float(np.mean(np.asarray(f)[present])) if present.any() else 0.0
    weighted = float(np.sum(np.asarray(f) * support) / support.sum()) if support.sum() else 0.0
    accuracy = float(np.mean([a == b for a, b in zip(y_true, y_pred, strict=True)]))
    return {
        "accuracy": accuracy,
        "macro_f1": macro,
        "weighted_f1": weighted,
        "per_class": {
            label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                    "support": int(s[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": labels,
        "support": n,
    }


def recall_at_k(recommended: Sequence[Any], relevant: set[Any], k: int) -> float:
    """Share of the relevant items found in the top ``k`` (0 when nothing is relevant)."""
    if not relevant:
        return 0.0
    return len(set(list(recommended)[:k]) & relevant) / len(relevant)


def ndcg_at_k(recommended: Sequence[Any], relevant: set[Any], k: int) -> float:
    """Binary-relevance NDCG@K: DCG of the list over the DCG of an ideal list."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(list(recommended)[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal


def mrr(recommended: Sequence[Any], relevant: set[Any]) -> float:
    """Reciprocal rank of the first relevant item (0 if none appears)."""
    for i, item in enumerate(recommended):
        if item in relevant:
            return 1.0 / (i + 1)
    return 0.0


def ranking_report(
    lists: Sequence[Sequence[Any]], relevant: Sequence[set[Any]], ks: Sequence[int] = (5, 10, 20)
) -> dict[str, float]:
    """Mean Recall@K, NDCG@K (for each K) and MRR over many users.

    Args:
        lists: one ranked recommendation list per user.
        relevant: the held-out relevant items per user, same order.
        ks: cut-offs.
    """
    if len(lists) != len(relevant):
        raise ValueError("one relevant set per recommendation list")
    users = len(lists) or 1
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = sum(recall_at_k(a, b, k) for a, b in zip(lists, relevant, strict=True)) / users
        out[f"ndcg@{k}"] = sum(ndcg_at_k(a, b, k) for a, b in zip(lists, relevant, strict=True)) / users
    out["mrr"] = sum(mrr(a, b) for a, b in zip(lists, relevant, strict=True)) / users
    return out
