"""Speed of sentiment bucketing: numpy ``bucketize`` against adding mentions one at a time.

100,000 scored mentions over 30 days into 15-minute buckets, four ways, timed in the same run
(best of ``--repeat``); ratios are against the one-at-a-time ``Bucket.add`` loop:

- ``Bucket.add`` per mention into a dict of buckets (what a naive incremental app would do);
- ``bucketize`` from aware datetimes and label -> probability dicts (what the app holds);
- ``bucketize`` from epoch seconds and an ``(n, 3)`` array;
- the three alert conditions evaluated at every bucket of the resulting series.

    OMP_NUM_THREADS=1 python bench/bench_sentiment_series.py [--points 100000] [--repeat 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from ml.sentiment.alerts import ChangeCondition, LevelCondition, VolumeSpikeCondition  # noqa: E402
from ml.sentiment.series import Bucket, Series, bucket_start, bucketize  # noqa: E402


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def one_at_a_time(stamps: list[datetime], dicts: list[dict[str, float]]) -> dict[datetime, Bucket]:
    buckets: dict[datetime, Bucket] = {}
    for t, p in zip(stamps, dicts, strict=True):
        start = bucket_start(t, "15m")
        buckets.setdefault(start, Bucket(start, 900)).add(p)
    return buckets


def evaluate_all(series: Series) -> int:
    rules = [
        LevelCondition("below", -0.3, window=4),
        ChangeCondition("either", 0.3, window=4),
        VolumeSpikeCondition(z=3, baseline=24),
    ]
    fired = 0
    for i in range(len(series)):
        now = series.start + i * series.width + 1
        fired += sum(rule.evaluate(series, now) is not None for rule in rules)
    return fired


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    seconds = np.sort(1.7e9 + rng.uniform(0, 30 * 86_400, args.points))
    probs = rng.dirichlet([1, 1, 1], args.points)
    stamps = [datetime.fromtimestamp(s, UTC) for s in seconds.tolist()]
    dicts = [{"bearish": a, "neutral": b, "bullish": c} for a, b, c in probs.tolist()]

    base, buckets = best_of(args.repeat, lambda: one_at_a_time(stamps, dicts))
    rows = [("Bucket.add, one mention at a time", base)]
    t_dicts, from_dicts = best_of(args.repeat, lambda: bucketize(stamps, dicts, "15m"))
    rows.append(("bucketize(datetimes, dicts)", t_dicts))
    t_arrays, series = best_of(args.repeat, lambda: bucketize(seconds, probs, "15m"))
    rows.append(("bucketize(epoch array, (n, 3) array)", t_arrays))
    t_alerts, fired = best_of(1, lambda: evaluate_all(series))
    rows.append((f"3 alert rules x {len(series)} buckets (no mentions/s)", t_alerts))

    same = Series.from_buckets(buckets.values(), "15m", start=series.start, end=series.end)
    assert same.n.tolist() == series.n.tolist() == from_dicts.n.tolist()
    print(f"{args.points} mentions, {len(series)} buckets of 15 min, {fired} alert triggers\n")
    print(f"{'method':<50}{'seconds':>10}{'mentions/s':>14}{'x one-at-a-time':>17}")
    for name, t in rows:
        rate = "-" if "alert" in name else f"{args.points / t:,.0f}"
        print(f"{name:<50}{t:>10.4f}{rate:>14}{base / t:>17.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
