"""Classification reports, gate results and version rows shaped for the model pages."""

from __future__ import annotations

from typing import Any

from apps.mlops.models import ModelVersion


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def report_view(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """A classification report (``ml.metrics.classification_report``) as table rows.

    The confusion matrix cells carry a 0..1 shade (share of their gold row) so the page
    can colour them without JavaScript.
    """
    if not isinstance(report, dict) or "macro_f1" not in report:
        return None
    labels = list(report.get("labels") or report.get("per_class", {}).keys())
    per_class = [
        {"label": label, **{k: _number(v) for k, v in report.get("per_class", {}).get(label, {}).items()}}
        for label in labels
    ]
    matrix = report.get("confusion_matrix") or []
    rows = []
    for i, (label, counts) in enumerate(zip(labels, matrix, strict=False)):
        total = sum(counts) or 1
        rows.append(
            {
                "label": label,
                "cells": [{"count": n, "shade": round(n / total, 2), "diagonal": i == j} for j, n in enumerate(counts)],
            }
        )
    return {
        "accuracy": _number(report.get("accuracy")),
        "macro_f1": _number(report.get("macro_f1")),
        "weighted_f1": _number(report.get("weighted_f1")),
        "support": report.get("support"),
        "labels": labels,
        "per_class": per_class,
        "matrix": rows,
    }


def gate_view(eval_report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The latest evaluation gate result of a version: candidate vs active, same rows."""
    if not isinstance(eval_report, dict) or "candidate" not in eval_report:
        return None
    candidate, active = eval_report.get("candidate") or {}, eval_report.get("active") or {}
    return {
        "rows": eval_report.get("rows"),
        "dataset": eval_report.get("dataset"),
        "evaluated_at": eval_report.get("evaluated_at"),
        "candidate_macro_f1": _number(candidate.get("macro_f1")),
        "candidate_accuracy": _number(candidate.get("accuracy")),
        "active_version": active.get("version"),
        "active_macro_f1": _number(active.get("macro_f1")),
        "active_accuracy": _number(active.get("accuracy")),
        "candidate": report_view(candidate),
    }


def version_row(version: ModelVersion) -> dict[str, Any]:
    metrics = version.metrics or {}
    return {
        "obj": version,
        "macro_f1": _number(metrics.get("macro_f1")),
        "accuracy": _number(metrics.get("accuracy")),
        "eval_loss": _number(metrics.get("eval_loss")),
        "gate": gate_view(version.eval_report),
    }


def abstention_view(settings: dict[str, Any] | None, eval_report: dict[str, Any] | None) -> dict[str, Any] | None:
    """Calibration, the abstention rule and the latest evaluation's out-of-scope figures.

    ``settings`` is ``services.abstention.version_abstention_get``; ``chart`` feeds the
    threshold curve (the latest evaluation's when it has one, else the held-out one it was chosen on).
    """
    candidate = eval_report.get("candidate") if isinstance(eval_report, dict) else None
    evaluated = candidate.get("abstention") if isinstance(candidate, dict) else None
    if not settings and not evaluated:
        return None
    calibration = (settings or {}).get("calibration") or {}
    rule = (settings or {}).get("abstention") or {}
    curve = (evaluated or {}).get("curve") or rule.get("curve") or []
    return {
        "temperature": _number(calibration.get("temperature")),
        "ece_before": _number(calibration.get("ece_before")),
        "ece_after": _number(calibration.get("ece_after")),
        "method": rule.get("method"),
        "per_class_knn": bool(rule.get("labels_file")),  # knn_max_prob_oos reads the predicted class's texts
        "relative_oos": rule.get("oos_margin") is not None,  # ... and penalises how close an example comes
        "threshold": _number(rule.get("threshold")),
        "oos_label": rule.get("oos_label"),
        "basis": rule.get("basis"),
        "auroc": {k: _number(v) for k, v in (rule.get("auroc") or {}).items()},
        "dev": {k: _number(v) for k, v in (rule.get("dev") or {}).items()},
        "evaluated": {k: _number(v) for k, v in (evaluated or {}).items() if k != "curve"} if evaluated else None,
        "chart": {"curve": curve, "threshold": _number(rule.get("threshold"))},
        "curve_from": "latest evaluation" if (evaluated or {}).get("curve") else "held-out rows at calibration",
    }
