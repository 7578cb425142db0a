"""Alert conditions on a sentiment series, behind one ``evaluate(series, now)`` interface.

Three conditions (the app stores a rule as ``kind`` + ``params`` and rebuilds it with
``condition_from_params``):

- ``LevelCondition``: the mean score over the last ``window`` buckets is above / below a level.
- ``ChangeCondition``: that mean minus the mean of the ``window`` buckets before it moved up /
  down / either way by at least ``threshold``.
- ``VolumeSpikeCondition``: the current bucket's volume is ``z`` standard deviations above the
  mean of the previous ``baseline`` buckets.

The window ends with the bucket holding ``now``, so rules evaluated as scores arrive react
within the bucket (a partial bucket can only understate a spike, never invent one). Means are
volume-weighted (the mean of all mentions in the window). Buckets past the series' end count
as empty. ``should_fire`` applies a rule's cooldown.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

import numpy as np

from ml.sentiment.series import Series, describe_duration, to_epoch

MAX_WINDOW = 10_000  # buckets; 10k hourly buckets is 14 months, more is a mistake


@dataclass(frozen=True)
class Trigger:
    """A condition that fired.

    Attributes:
        kind: ``level`` | ``change`` | ``volume_spike``.
        value: the measured value (mean score, change of mean, or z-score).
        threshold: what it was compared with.
        message: one line for the analyst, e.g.
            ``AAPL mean sentiment -0.42 over 1 h is below -0.30``.
        start / end: every bucket the condition looked at, ``[start, end)`` (UTC).
        recent_start: start of the part that crossed the threshold (the last window, or
            the spiking bucket); the documents in ``[recent_start, end)`` triggered the alert.
        volume: mentions in ``[recent_start, end)``.
    """

    kind: str
    value: float
    threshold: float
    message: str
    start: datetime
    end: datetime
    recent_start: datetime
    volume: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("start", "end", "recent_start"):
            data[key] = data[key].isoformat()
        return data


class AlertCondition(Protocol):
    """What every condition offers."""

    kind: ClassVar[str]

    def evaluate(self, series: Series, now: datetime | float) -> Trigger | None: ...

    def params(self) -> dict[str, Any]: ...


def _whole(name: str, value: Any, low: int, high: int = MAX_WINDOW) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def _number(name: str, value: Any, low: float, high: float, *, open_low: bool = False) -> float:
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (open_low and value == low):
        bound = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
        raise ValueError(f"{name} must be a number in {bound}, got {value!r}")
    return float(value)


def _choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return str(value)


def _subject(series: Series) -> str:
    return series.name or "entity"


@dataclass(frozen=True)
class LevelCondition:
    """Mean score over the last ``window`` buckets above / below ``threshold``.

    Attributes:
        direction: ``above`` or ``below``.
        threshold: the level, in [-1, 1].
        window: buckets, ending with the one holding ``now``.
        min_volume: fewer mentions in the window never fire (one angry tweet is not news).
    """

    direction: str
    threshold: float
    window: int = 1
    min_volume: int = 1
    kind: ClassVar[str] = "level"

    def __post_init__(self) -> None:
        _choice("direction", self.direction, ("above", "below"))
        _number("threshold", self.threshold, -1.0, 1.0)
        _whole("window", self.window, 1)
        _whole("min_volume", self.min_volume, 1, 10**9)

    def params(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "threshold": self.threshold,
            "window": self.window,
            "min_volume": self.min_volume,
        }

    def evaluate(self, series: Series, now: datetime | float) -> Trigger | None:
        last = series.index_of(now)
        first = last - self.window + 1
        volume, total = series.totals(first, last)
        if volume < self.min_volume:
            return None
        mean = total / volume
        crossed = mean > self.threshold if self.direction == "above" else mean < self.threshold
        if not crossed:
            return None
        span = describe_duration(self.window * series.width)
        message = f"{_subject(series)} mean sentiment {mean:.2f} over {span} is {self.direction} {self.threshold:.2f}"
        start = series.start_at(first)
        return Trigger(self.kind, mean, self.threshold, message, start, series.start_at(last + 1), start, volume)


@dataclass(frozen=True)
class ChangeCondition:
    """Mean of the last ``window`` buckets minus the mean of the ``window`` before them.

    Attributes:
        direction: ``up`` (change >= threshold), ``down`` (change <= -threshold) or ``either``.
        threshold: size of the move, in (0, 2].
        window: buckets per window.
        min_volume: each window needs at least this many mentions.
    """

    direction: str
    threshold: float
    window: int = 1
    min_volume: int = 1
    kind: ClassVar[str] = "change"

    def __post_init__(self) -> None:
        _choice("direction", self.direction, ("up", "down", "either"))
        _number("threshold", self.threshold, 0.0, 2.0, open_low=True)
        _whole("window", self.window, 1)
        _whole("min_volume", self.min_volume, 1, 10**9)

    def params(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "threshold": self.threshold,
            "window": self.window,
            "min_volume": self.min_volume,
        }

    def evaluate(self, series: Series, now: datetime | float) -> Trigger | None:
        last = series.index_of(now)
        recent_first = last - self.window + 1
        before_first = recent_first - self.window
        recent_n, recent_sum = series.totals(recent_first, last)
        before_n, before_sum = series.totals(before_first, recent_first - 1)
        if recent_n < self.min_volume or before_n < self.min_volume:
            return None
        recent, before = recent_sum / recent_n, before_sum / before_n
        change = recent - before
        fired = {
            "up": change >= self.threshold,
            "down": change <= -self.threshold,
            "either": abs(change) >= self.threshold,
        }[self.direction]
        if not fired:
            return None
        span = describe_duration(self.window * series.width)
        verb = "rose" if change > 0 else "fell"
        message = (
            f"{_subject(series)} mean sentiment {verb} {abs(change):.2f} over {span} "
            f"(from {before:.2f} to {recent:.2f}), threshold {self.threshold:.2f}"
        )
        return Trigger(
            self.kind,
            change,
            self.threshold,
            message,
            series.start_at(before_first),
            series.start_at(last + 1),
            series.start_at(recent_first),
            recent_n,
        )


@dataclass(frozen=True)
class VolumeSpikeCondition:
    """Volume of the bucket holding ``now`` against the previous ``baseline`` buckets.

    ``z = (volume - mean) / max(std, sqrt(mean), std_floor)``: a baseline with no variance
    (std 0, e.g. a quiet entity at 0 or a feed at a constant rate) would make any extra mention
    an infinite z-score, so the spread is floored by the Poisson noise of the baseline's rate
    and by ``std_floor`` (mentions).

    Attributes:
        z: threshold on the z-score, > 0.
        baseline: buckets before the current one (at least 2).
        min_volume: the current bucket needs at least this many mentions.
        std_floor: smallest spread used, in mentions per bucket.
    """

    z: float = 3.0
    baseline: int = 24
    min_volume: int = 5
    std_floor: float = 1.0
    kind: ClassVar[str] = "volume_spike"

    def __post_init__(self) -> None:
        _number("z", self.z, 0.0, 1000.0, open_low=True)
        _whole("baseline", self.baseline, 2)
        _whole("min_volume", self.min_volume, 1, 10**9)
        _number("std_floor", self.std_floor, 0.0, 1e9, open_low=True)

    def params(self) -> dict[str, Any]:
        return {"z": self.z, "baseline": self.baseline, "min_volume": self.min_volume, "std_floor": self.std_floor}

    def evaluate(self, series: Series, now: datetime | float) -> Trigger | None:
        last = series.index_of(now)
        volume = int(series.volumes(last, last)[0])
        if volume < self.min_volume:
            return None
        history = series.volumes(last - self.baseline, last - 1).astype(np.float64)
        mean = float(history.mean())
        spread = max(float(history.std()), math.sqrt(mean), self.std_floor)
        score = (volume - mean) / spread
        if score < self.z:
            return None
        bucket = describe_duration(series.width)
        span = describe_duration(self.baseline * series.width)
        message = (
            f"{_subject(series)} volume {volume} in {bucket} is {score:.1f} standard deviations above "
            f"the previous {span} (mean {mean:.1f} per {bucket}), threshold {self.z:.1f}"
        )
        return Trigger(
            self.kind,
            score,
            self.z,
            message,
            series.start_at(last - self.baseline),
            series.start_at(last + 1),
            series.start_at(last),
            volume,
        )


CONDITIONS: dict[str, type[LevelCondition] | type[ChangeCondition] | type[VolumeSpikeCondition]] = {
    c.kind: c for c in (LevelCondition, ChangeCondition, VolumeSpikeCondition)
}


def condition_from_params(kind: str, params: dict[str, Any]) -> AlertCondition:
    """Builds a condition from a stored rule (``kind`` + JSON ``params``).

    Raises:
        ValueError: unknown kind, unknown or missing parameter, or a value out of bounds.
    """
    cls = CONDITIONS.get(kind)
    if cls is None:
        raise ValueError(f"unknown alert condition {kind!r}; use one of {', '.join(CONDITIONS)}")
    allowed = {f.name for f in fields(cls)}  # ClassVar ``kind`` is not a field
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) for {kind}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    try:
        return cls(**params)
    except TypeError as exc:  # a required parameter is missing
        raise ValueError(f"{kind}: {exc}") from exc


def should_fire(last_fired_at: datetime | float | None, now: datetime | float, cooldown: timedelta | float) -> bool:
    """Whether a rule may fire again: never fired, or ``cooldown`` has passed since it last did.

    Args:
        last_fired_at: when the rule last fired (None: never).
        now: the current time.
        cooldown: a timedelta or seconds, >= 0.

    Returns:
        True when ``now - last_fired_at >= cooldown``; a ``last_fired_at`` in the future
        (clock skew between workers) keeps the rule quiet.

    Raises:
        ValueError: a negative cooldown or a naive datetime.
    """
    seconds = cooldown.total_seconds() if isinstance(cooldown, timedelta) else float(cooldown)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"cooldown must be >= 0, got {cooldown!r}")
    current = to_epoch(now)
    if last_fired_at is None:
        return True
    return current - to_epoch(last_fired_at) >= seconds


__all__ = [
    "CONDITIONS",
    "AlertCondition",
    "ChangeCondition",
    "LevelCondition",
    "Trigger",
    "VolumeSpikeCondition",
    "condition_from_params",
    "should_fire",
]
