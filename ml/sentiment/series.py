"""Per-entity sentiment time series: scored mentions in fixed UTC buckets, rolling windows.

A mention's **score** is ``p(positive) - p(negative)`` (in [-1, 1]); its **label** is the most
probable of negative / neutral / positive (ties go to neutral, then positive). A bucket keeps
sums (count, score sum, label counts), so buckets merge by addition: the app stores them and
adds new scores without recomputing history (``Bucket.add`` / ``Bucket.merge``), and a batch
of 100k points is bucketed with numpy (``bucketize``).

Buckets are aligned to the Unix epoch, hence to UTC: 15-minute buckets start at :00, :15,
:30, :45 UTC and daily buckets at 00:00 UTC. A ``Series`` is dense over its range: an empty
bucket is explicit, with volume 0 and mean None (``nan`` in the numpy views).

The bucket arithmetic (widths, scores, ``Bucket``) lives in ``ml.sentiment.buckets`` and is
re-exported here, so callers import everything from this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from ml.sentiment.buckets import (
    ALIASES,
    LABELS,
    NEGATIVE,
    NEUTRAL,
    POSITIVE,
    WIDTHS,
    Bucket,
    bucket_start,
    describe_duration,
    from_epoch,
    probs_matrix,
    score_and_label,
    scores_and_labels,
    to_epoch,
    width_seconds,
)

__all__ = [
    "ALIASES",
    "LABELS",
    "NEGATIVE",
    "NEUTRAL",
    "POSITIVE",
    "WIDTHS",
    "Bucket",
    "Series",
    "bucket_start",
    "bucketize",
    "describe_duration",
    "from_epoch",
    "merge_into",
    "probs_matrix",
    "score_and_label",
    "scores_and_labels",
    "series_from_points",
    "to_epoch",
    "width_seconds",
]


def _ints(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int64)


@dataclass
class Series:
    """Dense buckets of one entity over ``[start, start + len * width)``.

    Attributes:
        width: bucket width in seconds.
        start: epoch seconds of the first bucket's start (a multiple of ``width``).
        n, sum_score, n_pos, n_neg, n_neu: one entry per bucket.
        name: the entity (symbol) the series is about, used in alert messages.
    """

    width: int
    start: float
    n: np.ndarray
    sum_score: np.ndarray
    n_pos: np.ndarray
    n_neg: np.ndarray
    n_neu: np.ndarray
    name: str = field(default="")

    @classmethod
    def empty(
        cls, width: str | int | timedelta, start: datetime | float, end: datetime | float, name: str = ""
    ) -> Series:
        """All-empty buckets covering ``[start, end)`` (start floored, end ceiled to buckets)."""
        w = width_seconds(width)
        first = np.floor(to_epoch(start) / w) * w
        count = max(0, int(np.ceil((to_epoch(end) - first) / w)))
        return cls(w, float(first), _ints(count), np.zeros(count), _ints(count), _ints(count), _ints(count), name)

    @classmethod
    def from_buckets(
        cls,
        buckets: Iterable[Bucket],
        width: str | int | timedelta,
        *,
        start: datetime | float | None = None,
        end: datetime | float | None = None,
        name: str = "",
    ) -> Series:
        """A dense series from stored buckets (gaps become empty buckets).

        Buckets of the same start are merged; buckets outside an explicit range are left out.
        """
        w = width_seconds(width)
        items = list(buckets)
        for b in items:
            if b.width != w or to_epoch(b.start) % w:
                raise ValueError(f"bucket {b.start.isoformat()}/{b.width}s is not a {w}s bucket")
        starts = [to_epoch(b.start) for b in items]
        lo = to_epoch(start) if start is not None else (min(starts) if starts else 0.0)
        hi = to_epoch(end) if end is not None else (max(starts) + w if starts else lo)
        series = cls.empty(w, lo, hi, name)
        for b, s in zip(items, starts, strict=True):
            i = int(round((s - series.start) / w))
            if 0 <= i < len(series):
                series.n[i] += b.n
                series.sum_score[i] += b.sum_score
                series.n_pos[i] += b.n_pos
                series.n_neg[i] += b.n_neg
                series.n_neu[i] += b.n_neu
        return series

    def __len__(self) -> int:
        return len(self.n)

    @property
    def end(self) -> float:
        return self.start + len(self) * self.width

    @property
    def starts(self) -> np.ndarray:
        """Epoch seconds of every bucket's start."""
        return self.start + self.width * np.arange(len(self), dtype=np.float64)

    def start_at(self, i: int) -> datetime:
        return from_epoch(self.start + i * self.width)

    def index_of(self, ts: datetime | float) -> int:
        """Index of the bucket holding ``ts`` (may be < 0 or >= len: outside the range)."""
        return int(np.floor((to_epoch(ts) - self.start) / self.width))

    @property
    def mean(self) -> np.ndarray:
        """Mean score per bucket; ``nan`` where the bucket is empty."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.sum_score / np.maximum(self.n, 1), np.nan)

    def share(self, label: str) -> np.ndarray:
        """Share of ``label`` per bucket; ``nan`` where empty."""
        counts = {"positive": self.n_pos, "negative": self.n_neg, "neutral": self.n_neu}[ALIASES.get(label, label)]
        return np.where(self.n > 0, counts / np.maximum(self.n, 1), np.nan)

    def totals(self, first: int, last: int) -> tuple[int, float]:
        """(volume, score sum) over buckets ``first..last`` inclusive; outside the range is empty."""
        lo, hi = max(first, 0), min(last + 1, len(self))
        if lo >= hi:
            return 0, 0.0
        return int(self.n[lo:hi].sum()), float(self.sum_score[lo:hi].sum())

    def volumes(self, first: int, last: int) -> np.ndarray:
        """Volumes of buckets ``first..last`` inclusive, zeros outside the range."""
        out = _ints(max(0, last - first + 1))
        lo, hi = max(first, 0), min(last + 1, len(self))
        if lo < hi:
            out[lo - first : hi - first] = self.n[lo:hi]
        return out

    def rolling_volume(self, size: int) -> np.ndarray:
        """Mentions over the last ``size`` buckets ending at each bucket."""
        return _rolling_sum(self.n, _window(size))

    def rolling_mean(self, size: int) -> np.ndarray:
        """Volume-weighted mean score over the last ``size`` buckets ending at each bucket.

        Equals the mean of all mentions in the window; ``nan`` where the window is empty.
        """
        size = _window(size)
        volume = _rolling_sum(self.n, size)
        total = _rolling_sum(self.sum_score, size)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(volume > 0, total / np.maximum(volume, 1), np.nan)

    def buckets(self, *, nonempty: bool = False) -> list[Bucket]:
        """The buckets as ``Bucket`` objects (to store or render)."""
        return [
            Bucket(
                self.start_at(i),
                self.width,
                int(self.n[i]),
                float(self.sum_score[i]),
                int(self.n_pos[i]),
                int(self.n_neg[i]),
                int(self.n_neu[i]),
            )
            for i in range(len(self))
            if not nonempty or self.n[i]
        ]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per bucket (mean and shares None when empty), for JSON and charts."""
        return [b.to_dict() for b in self.buckets()]

    def merge(self, other: Series) -> Series:
        """A new series over the union of both ranges with the sums added."""
        if other.width != self.width:
            raise ValueError(f"cannot merge a {other.width}s series into a {self.width}s series")
        if not len(other):
            return Series.from_buckets(self.buckets(), self.width, start=self.start, end=self.end, name=self.name)
        lo = min(self.start, other.start) if len(self) else other.start
        hi = max(self.end, other.end) if len(self) else other.end
        return Series.from_buckets(
            self.buckets(nonempty=True) + other.buckets(nonempty=True),
            self.width,
            start=lo,
            end=hi,
            name=self.name or other.name,
        )


def _window(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"window must be a whole number of buckets >= 1, got {size!r}")
    return int(size)


def _rolling_sum(values: np.ndarray, size: int) -> np.ndarray:
    csum = np.concatenate([[0], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    return csum[idx] - csum[np.maximum(idx - size, 0)]


def _epochs(timestamps: Iterable[datetime | float] | np.ndarray) -> np.ndarray:
    if isinstance(timestamps, np.ndarray):
        if np.issubdtype(timestamps.dtype, np.datetime64):
            return timestamps.astype("datetime64[us]").astype(np.int64) / 1e6
        if timestamps.dtype != object:
            return timestamps.astype(np.float64, copy=False)
    return np.fromiter((to_epoch(t) for t in timestamps), dtype=np.float64)


def bucketize(
    timestamps: Sequence[datetime | float] | np.ndarray,
    probs: Sequence[Mapping[str, float]] | np.ndarray,
    width: str | int | timedelta,
    *,
    start: datetime | float | None = None,
    end: datetime | float | None = None,
    name: str = "",
) -> Series:
    """Buckets scored mentions into a dense series (numpy: 100k points in milliseconds).

    Args:
        timestamps: aware datetimes, epoch seconds, or a numpy array of either
            (``datetime64`` is read as UTC).
        probs: one label -> probability mapping per mention, or an ``(n, 3)`` array
            (negative, neutral, positive).
        width: ``"15m" | "1h" | "1d"``, seconds or a timedelta.
        start / end: the range ``[start, end)``, widened to whole buckets; points outside
            are left out. By default from the first to the last point.
        name: the entity, for alert messages.

    Returns:
        The series; empty buckets have volume 0.
    """
    w = width_seconds(width)
    ts = _epochs(timestamps)
    scores, labels = scores_and_labels(probs)
    if len(ts) != len(scores):
        raise ValueError(f"{len(ts)} timestamps but {len(scores)} probability rows")
    if not np.isfinite(ts).all():
        raise ValueError("timestamps must be finite")
    lo = to_epoch(start) if start is not None else (float(ts.min()) if len(ts) else 0.0)
    hi = to_epoch(end) if end is not None else (float(np.floor(ts.max() / w) * w + w) if len(ts) else lo)
    series = Series.empty(w, lo, hi, name)
    idx = np.floor((ts - series.start) / w).astype(np.int64)
    keep = (idx >= 0) & (idx < len(series))
    idx, scores, labels = idx[keep], scores[keep], labels[keep]
    size = len(series)
    series.n[:] = np.bincount(idx, minlength=size)
    series.sum_score[:] = np.bincount(idx, weights=scores, minlength=size)
    series.n_neg[:] = np.bincount(idx[labels == NEGATIVE], minlength=size)
    series.n_neu[:] = np.bincount(idx[labels == NEUTRAL], minlength=size)
    series.n_pos[:] = np.bincount(idx[labels == POSITIVE], minlength=size)
    return series


def series_from_points(
    points: Iterable[tuple[datetime | float, Mapping[str, float]]],
    width: str | int | timedelta,
    **kwargs: Any,
) -> Series:
    """``bucketize`` for an iterable of ``(timestamp, probs)`` pairs."""
    pairs = list(points)
    return bucketize([t for t, _ in pairs], [p for _, p in pairs], width, **kwargs)


def merge_into(existing: Mapping[datetime, Bucket], new: Iterable[Bucket]) -> dict[datetime, Bucket]:
    """Adds new buckets into stored ones keyed by start; returns only the changed buckets.

    The stored buckets are updated in place; starts not stored yet get a copy of the new bucket.
    The app saves the returned buckets (an upsert) instead of recomputing the whole series.
    """
    by_epoch = {to_epoch(k): v for k, v in existing.items()}
    changed: dict[datetime, Bucket] = {}
    for b in new:
        if not b.n:
            continue
        stored = by_epoch.get(to_epoch(b.start))
        if stored is None:
            stored = Bucket(b.start, b.width)
            by_epoch[to_epoch(b.start)] = stored
        changed[stored.start] = stored.merge(b)
    return changed
