"""Bucket arithmetic for sentiment series: widths, UTC alignment, scores and labels, ``Bucket``.

A mention's **score** is ``p(positive) - p(negative)`` (in [-1, 1]); its **label** is the most
probable of negative / neutral / positive (ties go to neutral, then positive). A ``Bucket``
keeps sums (count, score sum, label counts), so buckets merge by addition. Buckets are
aligned to the Unix epoch, hence to UTC. ``ml.sentiment.series`` builds dense series of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

WIDTHS = {"15m": 900, "1h": 3600, "1d": 86_400}  # bucket name -> seconds
NEGATIVE, NEUTRAL, POSITIVE = 0, 1, 2  # label codes in the numpy views
LABELS = ("negative", "neutral", "positive")
# Model label names -> canonical names; the default sentiment model says bearish/bullish.
ALIASES = {
    "negative": "negative",
    "bearish": "negative",
    "neutral": "neutral",
    "positive": "positive",
    "bullish": "positive",
}


def width_seconds(width: str | int | timedelta) -> int:
    """Bucket width in seconds from ``"15m" | "1h" | "1d"``, seconds or a timedelta.

    Raises:
        ValueError: unknown name, or not a positive whole number of seconds dividing a day.
    """
    if isinstance(width, str):
        if width not in WIDTHS:
            raise ValueError(f"unknown bucket width {width!r}; use one of {', '.join(WIDTHS)}")
        return WIDTHS[width]
    seconds = width.total_seconds() if isinstance(width, timedelta) else width
    if isinstance(seconds, bool) or int(seconds) != seconds or seconds <= 0:
        raise ValueError(f"bucket width must be a positive whole number of seconds, got {width!r}")
    if 86_400 % int(seconds) and int(seconds) % 86_400:
        # Otherwise buckets would drift across midnight UTC from one day to the next.
        raise ValueError(f"bucket width {int(seconds)} s neither divides nor is a multiple of a day")
    return int(seconds)


def describe_duration(seconds: float) -> str:
    """``900 -> "15 min"``, ``3600 -> "1 h"``, ``86400 -> "1 d"`` (for alert messages)."""
    seconds = int(seconds)
    if seconds % 86_400 == 0:
        return f"{seconds // 86_400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def to_epoch(ts: datetime | float | int) -> float:
    """Seconds since the epoch of an aware datetime (or a number, passed through).

    Raises:
        ValueError: a naive datetime (its time zone would be a guess).
    """
    if isinstance(ts, datetime):
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError(f"naive datetime {ts.isoformat()}: pass an aware datetime (UTC)")
        return ts.timestamp()
    return float(ts)


def from_epoch(seconds: float) -> datetime:
    """The aware UTC datetime of an epoch second."""
    return datetime.fromtimestamp(float(seconds), tz=UTC)


def bucket_start(ts: datetime | float, width: str | int | timedelta) -> datetime:
    """Start (UTC) of the bucket of ``width`` that holds ``ts``."""
    w = width_seconds(width)
    return from_epoch(np.floor(to_epoch(ts) / w) * w)


def _column(key: str) -> int:
    name = ALIASES.get(str(key).lower())
    if name is None:
        raise ValueError(f"unknown sentiment label {key!r}; expected {', '.join(sorted(ALIASES))}")
    return LABELS.index(name)


def _rows(probs: Iterable[Mapping[str, float]]) -> list[list[float]]:
    # Mentions of one model share one key order: resolve the columns once per key tuple.
    columns: dict[tuple[str, ...], tuple[int, ...]] = {}
    rows = []
    for p in probs:
        keys = tuple(p)
        cols = columns.get(keys)
        if cols is None:
            cols = columns[keys] = tuple(_column(k) for k in keys)
        row = [0.0, 0.0, 0.0]
        for c, v in zip(cols, p.values(), strict=True):
            row[c] = v
        rows.append(row)
    return rows


def score_and_label(probs: Mapping[str, float]) -> tuple[float, int]:
    """One mention's score and label code, in plain Python (``scores_and_labels`` for many).

    Raises:
        ValueError: an unknown label or a probability outside [0, 1].
    """
    neg, neu, pos = _rows([probs])[0]
    if not all(-1e-6 <= v <= 1 + 1e-6 for v in (neg, neu, pos)):  # NaN fails too
        raise ValueError("probabilities must be finite numbers in [0, 1]")
    label = NEUTRAL if neu >= max(pos, neg) else (POSITIVE if pos >= neg else NEGATIVE)
    return pos - neg, label


def probs_matrix(probs: Iterable[Mapping[str, float]] | np.ndarray) -> np.ndarray:
    """``(n, 3)`` float array of p(negative), p(neutral), p(positive).

    Args:
        probs: label -> probability mappings (labels negative/neutral/positive or
            bearish/neutral/bullish; a missing label counts 0), or an ``(n, 3)`` array
            already in that column order.

    Raises:
        ValueError: an unknown label, a wrong shape, or a probability outside [0, 1].
    """
    if isinstance(probs, np.ndarray):
        matrix = probs.astype(np.float64, copy=False)
    else:
        matrix = np.array(_rows(probs), dtype=np.float64).reshape(-1, 3)
    if matrix.ndim != 2 or matrix.shape[1] != 3:
        raise ValueError(f"probabilities must have shape (n, 3), got {matrix.shape}")
    if matrix.size and (not np.isfinite(matrix).all() or matrix.min() < -1e-6 or matrix.max() > 1 + 1e-6):
        raise ValueError("probabilities must be finite numbers in [0, 1]")
    return matrix


def scores_and_labels(probs: Iterable[Mapping[str, float]] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per mention: score ``p(pos) - p(neg)`` and label code (0 neg, 1 neu, 2 pos)."""
    matrix = probs_matrix(probs)
    scores = matrix[:, POSITIVE] - matrix[:, NEGATIVE]
    # argmax over (neutral, positive, negative): ties resolve to neutral, then positive.
    order = np.array([NEUTRAL, POSITIVE, NEGATIVE])
    labels = order[np.argmax(matrix[:, order], axis=1)] if len(matrix) else np.empty(0, dtype=np.int64)
    return scores, labels.astype(np.int8)


@dataclass
class Bucket:
    """Sums over the mentions of one time bucket; merges by addition.

    Attributes:
        start: the bucket's start (aware UTC).
        width: its length in seconds.
        n: mentions (volume).
        sum_score: sum of the scores.
        n_pos / n_neg / n_neu: mentions by label.
    """

    start: datetime
    width: int
    n: int = 0
    sum_score: float = 0.0
    n_pos: int = 0
    n_neg: int = 0
    n_neu: int = 0

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.width)

    @property
    def mean(self) -> float | None:
        """Mean score, None for an empty bucket."""
        return self.sum_score / self.n if self.n else None

    def share(self, label: str) -> float | None:
        """Share of mentions with ``label`` (positive/negative/neutral), None when empty."""
        counts = {"positive": self.n_pos, "negative": self.n_neg, "neutral": self.n_neu}
        name = ALIASES.get(label, label)
        if name not in counts:
            raise ValueError(f"unknown label {label!r}")
        return counts[name] / self.n if self.n else None

    def contains(self, ts: datetime | float) -> bool:
        t = to_epoch(ts)
        return self.start.timestamp() <= t < self.start.timestamp() + self.width

    def add(self, probs: Mapping[str, float], ts: datetime | float | None = None) -> Bucket:
        """Adds one scored mention (in place); returns self.

        Args:
            probs: label -> probability, as for ``probs_matrix``.
            ts: the mention's time; when given it must fall inside the bucket.
        """
        if ts is not None and not self.contains(ts):
            raise ValueError(
                f"{from_epoch(to_epoch(ts)).isoformat()} is outside the bucket "
                f"[{self.start.isoformat()}, {self.end.isoformat()})"
            )
        score, label = score_and_label(probs)
        self.n += 1
        self.sum_score += score
        self.n_neg += label == NEGATIVE
        self.n_neu += label == NEUTRAL
        self.n_pos += label == POSITIVE
        return self

    def merge(self, other: Bucket) -> Bucket:
        """Adds another bucket's sums (same start and width) in place; returns self."""
        if other.width != self.width or to_epoch(other.start) != to_epoch(self.start):
            raise ValueError(
                f"cannot merge bucket {other.start.isoformat()}/{other.width}s into "
                f"{self.start.isoformat()}/{self.width}s"
            )
        self.n += other.n
        self.sum_score += other.sum_score
        self.n_pos += other.n_pos
        self.n_neg += other.n_neg
        self.n_neu += other.n_neu
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "width": self.width,
            "volume": self.n,
            "mean": self.mean,
            "share_positive": self.share("positive"),
            "share_negative": self.share("negative"),
            "share_neutral": self.share("neutral"),
        }
