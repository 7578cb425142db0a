from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from ml.sentiment.alerts import (
    ChangeCondition,
    LevelCondition,
    VolumeSpikeCondition,
    condition_from_params,
    should_fire,
)
from ml.sentiment.series import Series

T0 = datetime(2024, 3, 1, 9, tzinfo=UTC)


def quarter_hours(means: list[float | None], volumes: list[int], name: str = "AAPL") -> Series:
    """A 15-minute series from T0 with the given per-bucket means and volumes."""
    series = Series.empty("15m", T0, T0 + timedelta(minutes=15 * len(volumes)), name=name)
    for i, (mean, volume) in enumerate(zip(means, volumes, strict=True)):
        series.n[i] = volume
        series.sum_score[i] = (mean or 0.0) * volume
    return series


def now_in(bucket: int) -> datetime:
    return T0 + timedelta(minutes=15 * bucket + 7)


def test_level_below_fires_with_the_analyst_message():
    # given four quarter-hours averaging -0.42, the last one still filling
    series = quarter_hours([-0.5, -0.3, -0.5, -0.4], [10, 10, 10, 20])
    rule = LevelCondition("below", -0.30, window=4, min_volume=20)
    # when evaluated inside the last bucket
    trigger = rule.evaluate(series, now_in(3))
    # then it fires over exactly those buckets
    assert trigger is not None
    assert trigger.message == "AAPL mean sentiment -0.42 over 1 h is below -0.30"
    assert trigger.value == pytest.approx(-0.42) and trigger.threshold == -0.30 and trigger.volume == 50
    assert (trigger.start, trigger.end) == (T0, T0 + timedelta(hours=1))
    assert trigger.to_dict()["kind"] == "level"


def test_level_does_not_fire_above_the_level_or_on_thin_volume():
    series = quarter_hours([-0.5, -0.3, -0.5, -0.4], [10, 10, 10, 20])
    assert LevelCondition("below", -0.45, window=4).evaluate(series, now_in(3)) is None
    assert LevelCondition("below", -0.30, window=4, min_volume=51).evaluate(series, now_in(3)) is None
    assert LevelCondition("above", -0.50, window=4).evaluate(series, now_in(3)) is not None
    # after the series ends the window is empty: nothing to say
    assert LevelCondition("below", 0.9, window=4).evaluate(series, now_in(20)) is None


def test_change_down_fires_and_up_does_not():
    # previous hour averages +0.2, the last hour -0.3: a fall of 0.5
    series = quarter_hours([0.2, 0.2, 0.2, 0.2, -0.3, -0.3, -0.3, -0.3], [5] * 8)
    down = ChangeCondition("down", 0.4, window=4).evaluate(series, now_in(7))
    assert down is not None
    assert down.value == pytest.approx(-0.5)
    assert down.message == ("AAPL mean sentiment fell 0.50 over 1 h (from 0.20 to -0.30), threshold 0.40")
    assert down.start == T0 and down.recent_start == T0 + timedelta(hours=1) and down.volume == 20
    assert ChangeCondition("up", 0.4, window=4).evaluate(series, now_in(7)) is None
    assert ChangeCondition("either", 0.4, window=4).evaluate(series, now_in(7)) is not None
    assert ChangeCondition("down", 0.6, window=4).evaluate(series, now_in(7)) is None


def test_change_needs_volume_in_both_windows():
    series = quarter_hours([None, None, None, None, -0.9, -0.9, -0.9, -0.9], [0, 0, 0, 0, 5, 5, 5, 5])
    assert ChangeCondition("down", 0.1, window=4).evaluate(series, now_in(7)) is None


def test_volume_spike_fires_against_a_noisy_baseline():
    rng = np.random.default_rng(0)
    baseline = rng.poisson(10, 24).tolist()
    series = quarter_hours([0.0] * 25, [*baseline, 40])
    trigger = VolumeSpikeCondition(z=3, baseline=24).evaluate(series, now_in(24))
    assert trigger is not None and trigger.kind == "volume_spike"
    mean, std = np.mean(baseline), np.std(baseline)
    assert trigger.value == pytest.approx((40 - mean) / max(std, np.sqrt(mean)))
    assert trigger.recent_start == T0 + timedelta(hours=6) and trigger.volume == 40
    assert "AAPL volume 40 in 15 min" in trigger.message and "previous 6 h" in trigger.message
    normal = quarter_hours([0.0] * 25, [*baseline, 14])
    assert VolumeSpikeCondition(z=3, baseline=24).evaluate(normal, now_in(24)) is None


def test_volume_spike_with_a_zero_variance_baseline_uses_a_floor():
    # a feed at exactly 10 per bucket: std 0, so the spread is floored at sqrt(10)
    steady = [10] * 24
    one_more = quarter_hours([0.0] * 25, [*steady, 11])
    assert VolumeSpikeCondition(z=3, baseline=24).evaluate(one_more, now_in(24)) is None
    burst = VolumeSpikeCondition(z=3, baseline=24).evaluate(quarter_hours([0.0] * 25, [*steady, 30]), now_in(24))
    assert burst is not None and burst.value == pytest.approx(20 / np.sqrt(10))
    # a silent entity (all zeros): the floor of 1 mention keeps z finite; min_volume guards noise
    silent = [0] * 24
    assert (
        VolumeSpikeCondition(z=3, baseline=24, min_volume=5).evaluate(
            quarter_hours([0.0] * 25, [*silent, 2]), now_in(24)
        )
        is None
    )
    woke = VolumeSpikeCondition(z=3, baseline=24, min_volume=5).evaluate(
        quarter_hours([0.0] * 25, [*silent, 6]), now_in(24)
    )
    assert woke is not None and woke.value == pytest.approx(6.0)


def test_parameters_are_validated_with_clear_messages():
    with pytest.raises(ValueError, match="direction must be one of above, below, got 'under'"):
        LevelCondition("under", 0.1)
    with pytest.raises(ValueError, match=r"threshold must be a number in \[-1.0, 1.0\], got 1.5"):
        LevelCondition("above", 1.5)
    with pytest.raises(ValueError, match="window must be a whole number from 1"):
        ChangeCondition("down", 0.2, window=0)
    with pytest.raises(ValueError, match=r"threshold must be a number in \(0.0, 2.0\]"):
        ChangeCondition("down", 0.0)
    with pytest.raises(ValueError, match="baseline must be a whole number from 2"):
        VolumeSpikeCondition(baseline=1)
    with pytest.raises(ValueError, match="z must be"):
        VolumeSpikeCondition(z=-1)


def test_conditions_round_trip_through_stored_params():
    rule = VolumeSpikeCondition(z=4.0, baseline=48, min_volume=3)
    assert condition_from_params("volume_spike", rule.params()) == rule
    level = condition_from_params("level", {"direction": "below", "threshold": -0.3, "window": 4})
    assert isinstance(level, LevelCondition) and level.window == 4
    with pytest.raises(ValueError, match="unknown alert condition 'sideways'"):
        condition_from_params("sideways", {})
    with pytest.raises(ValueError, match="unknown parameter"):
        condition_from_params("level", {"direction": "below", "threshold": -0.3, "colour": "red"})
    with pytest.raises(ValueError, match="level: .*threshold"):
        condition_from_params("level", {"direction": "below"})


def test_cooldown():
    fired = datetime(2024, 3, 1, 12, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert should_fire(None, fired, hour)
    assert not should_fire(fired, fired + timedelta(minutes=59), hour)
    assert should_fire(fired, fired + hour, hour)
    assert should_fire(fired, fired, 0)
    assert not should_fire(fired, fired - timedelta(minutes=1), hour)  # clock skew keeps it quiet
    with pytest.raises(ValueError, match="cooldown must be >= 0"):
        should_fire(None, fired, timedelta(seconds=-1))
    with pytest.raises(ValueError, match="naive datetime"):
        should_fire(datetime(2024, 3, 1, 11), fired, hour)
