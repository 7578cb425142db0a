"""Per-entity series: SeriesBucket rows kept up to date by the scoring transaction, read as
dense series (empty buckets explicit) with rolling windows.

Buckets are aligned to UTC (``ml.sentiment.series``): 15-minute buckets start at :00, :15,
:30, :45, daily ones at midnight UTC. Scoring adds to them by an upsert whose increments are
done by the database (``n = n + excluded.n``), so two workers adding to one bucket at once
both count, and a rolled-back batch leaves them as they were.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from apps.sentiment.models import Entity, Label, SeriesBucket
from ml.sentiment.series import Bucket, Series

WIDTHS = tuple(int(w) for w in SeriesBucket.Width.values)  # 900, 3600, 86400 seconds
DEFAULT_BUCKETS = 168  # a week of hours, 42 h of quarter hours, ~5.5 months of days
MAX_BUCKETS = 5000  # per request: 52 days of quarter hours; the JSON stays under ~1 MB
MAX_ROLLING = 500


class SeriesQueryError(ValueError):
    """A series request that cannot be answered as asked (the message says why)."""


@dataclass(frozen=True)
class ScorePoint:
    """One entity score to count: the entity, when its document was published, its value and label."""

    entity_id: int
    published_at: datetime
    value: float
    label: str


def bucket_start(ts: datetime, width: int) -> datetime:
    epoch = ts.timestamp()
    return datetime.fromtimestamp(epoch - epoch % width, tz=UTC)


def buckets_add(points: Iterable[ScorePoint], bases: Iterable[str]) -> list[tuple[int, str, int, datetime]]:
    """Adds ``points`` to the buckets of every width for each basis; call inside the scoring
    transaction. Returns the keys touched (entity, basis, width, start)."""
    sums: dict[tuple[int, str, int, datetime], list[float]] = defaultdict(lambda: [0, 0.0, 0, 0, 0])
    bases = list(bases)
    for point in points:
        for width in WIDTHS:
            start = bucket_start(point.published_at, width)
            for basis in bases:
                row = sums[(point.entity_id, basis, width, start)]
                row[0] += 1
                row[1] += point.value
                row[2] += point.label == Label.POSITIVE
                row[3] += point.label == Label.NEGATIVE
                row[4] += point.label == Label.NEUTRAL
    if not sums:
        return []
    keys = sorted(sums)  # one lock order for every writer: no deadlock between two workers
    table = connection.ops.quote_name(SeriesBucket._meta.db_table)
    q = connection.ops.quote_name
    columns = ("entity_id", "basis", "width_s", "start", "n", "sum_value", "n_positive", "n_negative", "n_neutral")
    counters = columns[4:]
    names, key = ", ".join(q(c) for c in columns), ", ".join(q(c) for c in columns[:4])
    values = ", ".join(["%s"] * len(columns))
    increments = ", ".join(f"{q(c)} = {table}.{q(c)} + excluded.{q(c)}" for c in counters)
    # Identifiers from the model's meta, quoted by the backend; every value is a parameter.
    sql = f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT ({key}) DO UPDATE SET {increments}"  # noqa: S608  # nosec B608
    adapt = connection.ops.adapt_datetimefield_value
    params = [(e, b, w, adapt(s), *(sums[(e, b, w, s)])) for e, b, w, s in keys]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
    return keys


# --- reading


# Bucket starts a datetime can hold, with room for the rolling window before ``since``.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(9000, 1, 1, tzinfo=UTC).timestamp()


def _range(width: int, since: datetime | None, until: datetime | None) -> tuple[float, float]:
    end = (until or timezone.now()).timestamp()
    if not EARLIEST <= (since.timestamp() if since else end) <= LATEST or not EARLIEST <= end <= LATEST:
        raise SeriesQueryError("since and until must lie between the years 1900 and 9000")
    last = end - end % width  # start of the bucket holding ``until``
    start = since.timestamp() if since else last - (DEFAULT_BUCKETS - 1) * width
    first = start - start % width
    if first > last:
        raise SeriesQueryError("since is after until")
    count = int((last - first) // width) + 1
    if count > MAX_BUCKETS:
        raise SeriesQueryError(
            f"{count} buckets of {width} s asked for; at most {MAX_BUCKETS} per request "
            "(narrow since/until or use a wider bucket)"
        )
    return first, last


def series_get(
    *,
    entity: Entity,
    width: int,
    since: datetime | None = None,
    until: datetime | None = None,
    basis: str = SeriesBucket.LIVE,
    rolling: int | None = None,
) -> dict[str, Any]:
    """Dense buckets of ``entity`` over [since, until] (whole buckets), empty ones included.

    ``rolling`` adds the volume-weighted mean (and the volume) over the last N buckets ending
    at each bucket; buckets before ``since`` are read for it, so the first ones are exact.
    """
    if width not in WIDTHS:
        raise SeriesQueryError(f"width must be one of {', '.join(map(str, WIDTHS))} seconds")
    if rolling is not None and not 1 <= rolling <= MAX_ROLLING:
        raise SeriesQueryError(f"rolling must be between 1 and {MAX_ROLLING} buckets")
    first, last = _range(width, since, until)
    lead = (rolling - 1) * width if rolling else 0
    rows = SeriesBucket.objects.filter(
        entity=entity,
        basis=basis,
        width_s=width,
        start__gte=datetime.fromtimestamp(first - lead, tz=UTC),
        start__lte=datetime.fromtimestamp(last, tz=UTC),
    )
    stored = [
        Bucket(row.start, width, row.n, row.sum_value, row.n_positive, row.n_negative, row.n_neutral) for row in rows
    ]
    series = Series.from_buckets(stored, width, start=first - lead, end=last + width, name=entity.symbol)
    skip = lead // width
    rolling_mean = series.rolling_mean(rolling)[skip:] if rolling else None
    rolling_volume = series.rolling_volume(rolling)[skip:] if rolling else None
    buckets = []
    for i, bucket in enumerate(series.buckets()[skip:]):
        row = {
            "start": bucket.start,
            "volume": bucket.n,
            "mean": bucket.mean,
            "share_positive": bucket.share("positive"),
            "share_negative": bucket.share("negative"),
            "share_neutral": bucket.share("neutral"),
        }
        row["rolling_mean"] = row["rolling_volume"] = None
        if rolling:
            mean = float(rolling_mean[i])
            row["rolling_mean"] = None if math.isnan(mean) else mean
            row["rolling_volume"] = int(rolling_volume[i])
        buckets.append(row)
    return {
        "symbol": entity.symbol,
        "basis": basis,
        "width": width,
        "rolling": rolling,
        "since": datetime.fromtimestamp(first, tz=UTC),
        "until": datetime.fromtimestamp(last + width, tz=UTC),
        "volume": int(sum(b["volume"] for b in buckets)),
        "buckets": buckets,
    }


def series_bases(entity: Entity | None = None) -> list[str]:
    """The bases with buckets: ``live`` first, then the rescored versions."""
    rows = SeriesBucket.objects.all() if entity is None else SeriesBucket.objects.filter(entity=entity)
    found = set(rows.values_list("basis", flat=True).distinct())
    return [SeriesBucket.LIVE] * (SeriesBucket.LIVE in found) + sorted(found - {SeriesBucket.LIVE})


def latest_bucket_end(entity: Entity, width: int, basis: str = SeriesBucket.LIVE) -> datetime | None:
    """End of the newest non-empty bucket (a replay's data ends long before now)."""
    start = (
        SeriesBucket.objects.filter(entity=entity, basis=basis, width_s=width, n__gt=0)
        .order_by("-start")
        .values_list("start", flat=True)
        .first()
    )
    return start + timedelta(seconds=width) if start else None
