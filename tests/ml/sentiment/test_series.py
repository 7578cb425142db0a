from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from ml.sentiment.series import (
    Bucket,
    Series,
    bucket_start,
    bucketize,
    merge_into,
    probs_matrix,
    scores_and_labels,
    series_from_points,
    width_seconds,
)

POS = {"negative": 0.1, "neutral": 0.2, "positive": 0.7}  # score 0.6, label positive
NEG = {"negative": 0.8, "neutral": 0.1, "positive": 0.1}  # score -0.7, label negative
NEU = {"negative": 0.2, "neutral": 0.5, "positive": 0.3}  # score 0.1, label neutral


def at(hour: int, minute: int = 0, second: float = 0, day: int = 1) -> datetime:
    whole = int(second)
    return datetime(2024, 3, day, hour, minute, whole, int(round((second - whole) * 1e6)), tzinfo=UTC)


def test_width_names_and_invalid_widths():
    assert [width_seconds(w) for w in ("15m", "1h", "1d")] == [900, 3600, 86_400]
    assert width_seconds(timedelta(minutes=5)) == 300
    for bad in ("2x", 0, -900, 7, 1.5):
        with pytest.raises(ValueError, match="bucket width"):
            width_seconds(bad)


def test_bucket_boundaries_are_left_closed_and_aligned_to_utc():
    # given points on and just before 15-minute boundaries
    times = [at(10, 14, 59.999), at(10, 15), at(10, 29, 59), at(10, 30)]
    # when bucketed
    series = bucketize(times, [POS] * 4, "15m")
    # then a boundary instant opens the next bucket
    assert series.start_at(0) == at(10, 0)
    assert series.n.tolist() == [1, 2, 1]
    assert bucket_start(at(10, 15), "15m") == at(10, 15)
    assert bucket_start(at(10, 14, 59.999), "15m") == at(10, 0)


def test_daily_buckets_start_at_midnight_utc_whatever_the_input_zone():
    new_york = timezone(timedelta(hours=-5))
    late_evening = datetime(2024, 3, 1, 21, 30, tzinfo=new_york)  # 02:30 UTC on March 2
    series = bucketize([late_evening], [NEG], "1d")
    assert series.start_at(0) == datetime(2024, 3, 2, tzinfo=UTC)
    assert series.buckets()[0].start.tzinfo is UTC


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive datetime"):
        bucketize([datetime(2024, 3, 1, 10)], [POS], "1h")


def test_mean_score_and_label_shares():
    series = bucketize([at(9, 1), at(9, 2), at(9, 3), at(9, 59)], [POS, NEG, NEU, POS], "1h")
    bucket = series.buckets()[0]
    assert bucket.n == 4
    assert bucket.mean == pytest.approx((0.6 - 0.7 + 0.1 + 0.6) / 4)
    assert (bucket.n_pos, bucket.n_neg, bucket.n_neu) == (2, 1, 1)
    assert bucket.share("positive") == 0.5 and bucket.share("negative") == 0.25


def test_model_label_names_ties_and_unknown_labels():
    scores, labels = scores_and_labels(
        [
            {"bearish": 0.1, "bullish": 0.6, "neutral": 0.3},
            {"negative": 0.4, "neutral": 0.4, "positive": 0.2},
            {"negative": 0.5, "positive": 0.5},
        ]
    )
    assert scores.tolist() == pytest.approx([0.5, -0.2, 0.0])
    assert labels.tolist() == [2, 1, 2]  # a tie with neutral goes to neutral; pos/neg tie to positive
    with pytest.raises(ValueError, match="unknown sentiment label 'happy'"):
        probs_matrix([{"happy": 1.0}])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        probs_matrix([{"positive": 1.5}])


def test_empty_buckets_are_explicit():
    series = bucketize([at(9), at(12)], [POS, NEG], "1h")
    assert series.n.tolist() == [1, 0, 0, 1]
    rows = series.rows()
    assert rows[1]["volume"] == 0 and rows[1]["mean"] is None and rows[1]["share_positive"] is None
    assert math.isnan(series.mean[1]) and series.mean[3] == pytest.approx(-0.7)


def test_explicit_range_widens_to_whole_buckets_and_drops_points_outside():
    times = [at(8, 59), at(9, 5), at(9, 40), at(11, 0)]
    series = bucketize(times, [POS] * 4, "1h", start=at(9, 30), end=at(10, 30))
    assert series.start_at(0) == at(9) and len(series) == 2
    assert series.n.tolist() == [2, 0]


def test_numpy_inputs_and_a_hundred_thousand_points():
    rng = np.random.default_rng(0)
    seconds = 1.7e9 + rng.uniform(0, 30 * 86_400, 100_000)
    probs = rng.dirichlet([1, 1, 1], 100_000)
    series = bucketize(seconds, probs, "15m")
    assert series.n.sum() == 100_000
    assert series.sum_score.sum() == pytest.approx((probs[:, 2] - probs[:, 0]).sum())
    as_datetime64 = bucketize(seconds.astype("datetime64[s]"), probs, "15m")
    assert as_datetime64.n.sum() == 100_000 and as_datetime64.start == series.start


def test_incremental_merge_equals_batch():
    # given 500 random points over two days
    rng = np.random.default_rng(1)
    seconds = 1.7e9 + rng.uniform(0, 2 * 86_400, 500)
    probs = [
        dict(zip(("negative", "neutral", "positive"), row, strict=True))
        for row in rng.dirichlet([1, 1, 1], 500).tolist()
    ]
    batch = bucketize(seconds, probs, "1h")
    # when the same points arrive in three batches merged into stored buckets
    stored: dict[datetime, Bucket] = {}
    for part in np.array_split(np.arange(500), 3):
        piece = bucketize(seconds[part], [probs[i] for i in part], "1h")
        stored.update(merge_into(stored, piece.buckets(nonempty=True)))
    incremental = Series.from_buckets(stored.values(), "1h", start=batch.start, end=batch.end)
    # and one at a time through Bucket.add
    one_by_one: dict[datetime, Bucket] = {}
    for t, p in zip(seconds, probs, strict=True):
        start = bucket_start(float(t), "1h")
        one_by_one.setdefault(start, Bucket(start, 3600)).add(p, float(t))
    single = Series.from_buckets(one_by_one.values(), "1h", start=batch.start, end=batch.end)
    # then all three agree
    for other in (incremental, single):
        assert other.n.tolist() == batch.n.tolist()
        assert other.n_pos.tolist() == batch.n_pos.tolist() and other.n_neg.tolist() == batch.n_neg.tolist()
        assert other.sum_score == pytest.approx(batch.sum_score)
    halves = bucketize(seconds[:250], probs[:250], "1h").merge(bucketize(seconds[250:], probs[250:], "1h"))
    assert halves.n.tolist() == batch.n.tolist() and halves.sum_score == pytest.approx(batch.sum_score)


def test_bucket_add_and_merge_refuse_the_wrong_bucket():
    bucket = Bucket(at(9), 3600)
    with pytest.raises(ValueError, match="outside the bucket"):
        bucket.add(POS, at(10))
    with pytest.raises(ValueError, match="cannot merge"):
        bucket.merge(Bucket(at(10), 3600))
    assert bucket.mean is None and bucket.share("positive") is None


def test_rolling_mean_is_volume_weighted_and_empty_windows_are_nan():
    # bucket volumes 3, 0, 1, 0, 0, 0
    points = [(at(0, 5), POS), (at(0, 6), POS), (at(0, 7), NEG), (at(2, 1), NEG), (at(5, 59), NEU)]
    series = series_from_points(points[:-1], "1h", end=at(6))
    rolling = series.rolling_mean(2)
    assert rolling[0] == pytest.approx((0.6 + 0.6 - 0.7) / 3)
    assert rolling[1] == pytest.approx((0.6 + 0.6 - 0.7) / 3)  # the empty bucket adds nothing
    assert rolling[2] == pytest.approx(-0.7)
    assert math.isnan(rolling[4]) and math.isnan(rolling[5])
    assert series.rolling_volume(3).tolist() == [3, 3, 4, 1, 1, 0]
    with pytest.raises(ValueError, match="window must be"):
        series.rolling_mean(0)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 timestamps but 1 probability rows"):
        bucketize([at(1), at(2)], [POS], "1h")
