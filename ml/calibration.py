"""Confidence that means what it says: temperature scaling and calibration error.

A classifier's softmax is often over-confident (fine-tuned transformers) or under-confident
(zero-shot cosine heads). Temperature scaling (Guo et al., 2017, "On Calibration of Modern
Neural Networks") divides the logits by one scalar ``T`` fitted on held-out rows by
minimising the negative log-likelihood; the argmax, and so the accuracy, is unchanged.

``expected_calibration_error`` is the usual 15-bin ECE: the gap between confidence and
accuracy, averaged over equal-width confidence bins weighted by how many rows fall in each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0
ECE_BINS = 15
# Fewer held-out rows than this, or none predicted wrong, leave the temperature at 1: with no
# errors the NLL falls without end as T shrinks, and a handful of rows says little.
MIN_CALIBRATION_ROWS = 20
Targets = Sequence[int] | np.ndarray  # gold class index of each row


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` as float32.

    Args:
        logits: ``(n, classes)``.
        temperature: > 0; above 1 softens, below 1 sharpens.

    Returns:
        Probabilities, rows summing to 1.
    """
    scaled = np.asarray(logits, dtype=np.float64) / float(temperature)
    scaled -= scaled.max(axis=1, keepdims=True)  # no overflow in exp
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(logits: np.ndarray, targets: Targets, *, max_iter: int = 100) -> float:
    """The temperature minimising the NLL of ``targets`` under ``softmax(logits / T)``.

    Optimised over ``log T`` with L-BFGS (the NLL is smooth and one-dimensional there),
    then clamped to ``[MIN_TEMPERATURE, MAX_TEMPERATURE]``.

    Args:
        logits: held-out logits, ``(n, classes)``.
        targets: gold class index of each row.
        max_iter: L-BFGS iterations.

    Returns:
        The fitted temperature; 1.0 when there are no rows.
    """
    if len(targets) == 0:
        return 1.0
    x = torch.as_tensor(np.asarray(logits, dtype=np.float32), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(targets, dtype=np.int64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")
    bounds = (math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE))

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.clamp(*bounds).exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():  # callers may sit inside inference_mode
        optimizer.step(closure)
    temperature = float(log_t.detach().clamp(*bounds).exp())
    return temperature if math.isfinite(temperature) else 1.0


@dataclass
class ReliabilityBin:
    """One confidence bin of a reliability diagram.

    Attributes:
        lower: bin's lower confidence edge.
        upper: its upper edge.
        count: rows whose confidence falls in it.
        confidence: their mean confidence (0 when empty).
        accuracy: the fraction of them predicted right (0 when empty).
    """

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float


def reliability(probs: np.ndarray, targets: Targets, *, bins: int = ECE_BINS) -> list[ReliabilityBin]:
    """Reliability-diagram data: per confidence bin, mean confidence and accuracy.

    Args:
        probs: ``(n, classes)`` probabilities.
        targets: gold class index of each row.
        bins: equal-width bins over [0, 1].

    Returns:
        ``bins`` ReliabilityBin, lowest first.
    """
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1) if len(probs) else np.empty(0)
    correct = (probs.argmax(axis=1) == np.asarray(targets)) if len(probs) else np.empty(0, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edge_i, edge_i+1]; a confidence of exactly 0 goes to the first bin.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    out = []
    for i in range(bins):
        mask = which == i
        n = int(mask.sum())
        out.append(ReliabilityBin(
            lower=float(edges[i]), upper=float(edges[i + 1]), count=n,
            confidence=float(confidence[mask].mean()) if n else 0.0,
            accuracy=float(correct[mask].mean()) if n else 0.0))
    return out


def expected_calibration_error(probs: np.ndarray, targets: Targets, *, bins: int = ECE_BINS) -> float:
    """ECE: sum over bins of ``count / n * |accuracy - confidence|``.

    Args:
        probs: ``(n, classes)`` probabilities.
        targets: gold class index of each row.
        bins: equal-width confidence bins.

    Returns:
        The ECE in [0, 1]; 0.0 when there are no rows.
    """
    n = len(targets)
    if n == 0:
        return 0.0
    return float(sum(b.count / n * abs(b.accuracy - b.confidence) for b in reliability(probs, targets, bins=bins)))


@dataclass
class Calibration:
    """A fitted temperature and what it did on the rows it was fitted on.

    Attributes:
        temperature: divide logits by this before the softmax.
        ece_before: ECE at temperature 1.
        ece_after: ECE at ``temperature``.
        rows: how many rows it was fitted on.
        fitted: False when the rows could not support a fit (temperature left at 1).
    """

    temperature: float
    ece_before: float
    ece_after: float
    rows: int
    fitted: bool = True

    def to_manifest(self) -> dict[str, float | int | bool]:
        """The ``extra["calibration"]`` entry of a manifest."""
        return {"temperature": self.temperature, "ece_before": self.ece_before,
                "ece_after": self.ece_after, "rows": self.rows, "fitted": self.fitted}


def calibrate(logits: np.ndarray, targets: Targets) -> Calibration:
    """Fits a temperature on held-out logits and measures ECE before and after.

    Args:
        logits: ``(n, classes)`` logits of in-scope held-out rows.
        targets: their gold class indices.

    Returns:
        The Calibration (temperature 1 and ``fitted`` False with fewer than
        ``MIN_CALIBRATION_ROWS`` rows or none predicted wrong).
    """
    gold = np.asarray(targets, dtype=np.int64)
    errors = int((np.asarray(logits).argmax(axis=1) != gold).sum()) if len(gold) else 0
    fitted = len(targets) >= MIN_CALIBRATION_ROWS and errors > 0
    temperature = fit_temperature(logits, targets) if fitted else 1.0
    return Calibration(
        temperature=temperature,
        ece_before=expected_calibration_error(softmax(logits), targets),
        ece_after=expected_calibration_error(softmax(logits, temperature), targets),
        rows=len(targets), fitted=fitted)
