from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from scipy import stats

from ml.sentiment.backtest import (
    POOLED,
    DailySentiment,
    align,
    backtest,
    correlation,
    daily_from_series,
    hit_rate,
    wilson,
)
from ml.sentiment.series import bucketize

START = date(2021, 1, 4)  # a Monday


def trading_days(n: int) -> list[date]:
    days, d = [], START
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


def market(symbols: str, n_days: int, *, predictive: bool, seed: int = 0):
    """Random daily returns and sentiment that does (or does not) know tomorrow's return."""
    rng = np.random.default_rng(seed)
    days = trading_days(n_days)
    returns, sentiment = {}, []
    for symbol in symbols:
        r = rng.normal(0.0005, 0.01, n_days)
        returns[symbol] = list(zip(days, r.tolist(), strict=True))
        for k in range(n_days - 1):
            informed = np.clip(30 * r[k + 1] + rng.normal(0, 0.3), -1, 1)
            noise = np.clip(rng.normal(0, 0.4), -1, 1)
            sentiment.append(DailySentiment(symbol, days[k], float(informed if predictive else noise), 4))
    return sentiment, returns


def test_sentiment_that_predicts_returns_shows_a_signal():
    sentiment, returns = market("ABC", 250, predictive=True)
    report = backtest(sentiment, returns, min_volume=2, permutations=200)
    pooled = report.pooled
    assert pooled.symbol == POOLED and pooled.days == 3 * 249
    assert pooled.pearson.r > 0.5 and pooled.pearson.p_value < 1e-10
    assert pooled.pearson.p_permutation == pytest.approx(1 / 201)
    assert pooled.spearman.r > 0.5
    assert pooled.hit.rate > 0.7 and pooled.hit.ci_low > max(pooled.momentum.rate, pooled.always_up.rate, 0.5)
    assert pooled.verdict.startswith("signal")
    assert [row.symbol for row in report.rows] == ["A", "B", "C"]
    assert all(row.verdict.startswith("signal") for row in report.rows)


def test_shuffled_sentiment_shows_no_signal():
    sentiment, returns = market("ABC", 250, predictive=True, seed=3)
    rng = np.random.default_rng(7)
    shuffled_means = rng.permutation([s.mean for s in sentiment])
    shuffled = [s._replace(mean=float(m)) for s, m in zip(sentiment, shuffled_means, strict=True)]
    report = backtest(shuffled, returns, permutations=200)
    pooled = report.pooled
    assert abs(pooled.pearson.r) < 0.1 and pooled.pearson.p_permutation > 0.05
    assert pooled.hit.ci_low < 0.5 < pooled.hit.ci_high
    assert pooled.verdict.startswith("no signal")
    assert "ALL" in report.table().splitlines()[-1]


def test_weekend_sentiment_joins_friday_and_predicts_monday():
    friday, monday, tuesday = date(2021, 1, 8), date(2021, 1, 11), date(2021, 1, 12)
    returns = {"X": [(date(2021, 1, 7), 0.01), (friday, -0.02), (monday, 0.03), (tuesday, -0.01)]}
    sentiment = [
        DailySentiment("X", friday, 0.5, 1),
        DailySentiment("X", date(2021, 1, 9), -0.1, 3),  # Saturday
        DailySentiment("X", tuesday, 0.2, 2),  # no next return yet
        DailySentiment("X", date(2021, 1, 6), 0.9, 1),  # before the first trading day
        DailySentiment("Y", friday, 0.9, 1),  # no prices
    ]
    observations, dropped = align(sentiment, returns)
    assert len(observations) == 1
    obs = observations[0]
    assert (obs.day, obs.next_day) == (friday, monday)
    assert obs.sentiment == pytest.approx((0.5 - 0.3) / 4) and obs.volume == 4
    assert (obs.ret_today, obs.ret_next) == (-0.02, 0.03)
    assert dropped == {"no_next_return": 1, "before_prices": 1, "no_prices": 1}


def test_a_long_price_gap_is_not_bridged():
    returns = {"X": [(date(2021, 1, 4), 0.01), (date(2021, 1, 5), 0.01), (date(2021, 3, 1), 0.2)]}
    observations, dropped = align([DailySentiment("X", date(2021, 1, 5), 0.5, 1)], returns)
    assert observations == [] and dropped == {"price_gap": 1}


def test_hit_rate_skips_no_call_and_no_move_and_min_abs_filters():
    assert hit_rate(np.array([0.5, -0.2, 0.0, 0.3]), np.array([0.01, 0.02, 0.01, 0.0])).n == 2
    rate = hit_rate(np.array([0.5, -0.2]), np.array([0.01, 0.02]))
    assert (rate.hits, rate.n, rate.rate) == (1, 2, 0.5)
    returns = {"X": [(d, 0.01) for d in trading_days(6)]}
    weak_and_strong = [
        DailySentiment("X", d, m, 1) for d, m in zip(trading_days(5), [0.05, 0.5, -0.05, 0.4, 0.6], strict=True)
    ]
    report = backtest(weak_and_strong, returns, min_abs=0.3, permutations=0)
    assert report.pooled.hit.n == 3 and report.pooled.hit.rate == 1.0
    assert report.pooled.days == 5  # correlations still see every day with volume
    assert report.pooled.verdict.startswith("too few days")


def test_wilson_interval_known_values():
    low, high = wilson(50, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))
    assert wilson(0, 10)[0] == pytest.approx(0.0) and wilson(10, 10)[1] == pytest.approx(1.0)
    assert wilson(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert all(np.isnan(wilson(0, 0)))


def test_correlations_match_scipy():
    rng = np.random.default_rng(4)
    x = rng.normal(size=80)
    y = 0.3 * x + rng.normal(size=80)
    pearson = correlation(x, y, permutations=0)
    spearman = correlation(x, y, rank=True, permutations=0)
    expected_p, expected_s = stats.pearsonr(x, y), stats.spearmanr(x, y)
    assert pearson.r == pytest.approx(expected_p.statistic) and pearson.p_value == pytest.approx(expected_p.pvalue)
    assert spearman.r == pytest.approx(expected_s.statistic) and spearman.p_value == pytest.approx(expected_s.pvalue)
    assert np.isnan(correlation(x, np.ones(80)).r)  # a constant has no correlation


def test_daily_sentiment_from_a_daily_series():
    seconds = [1_609_459_200 + 3600, 1_609_459_200 + 7200, 1_609_459_200 + 2 * 86_400]  # Jan 1 (x2), Jan 3 2021
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.2, 0.3], [0.6, 0.3, 0.1]])
    daily = daily_from_series("X", bucketize(seconds, probs, "1d"))
    assert [(d.day, d.volume) for d in daily] == [(date(2021, 1, 1), 2), (date(2021, 1, 3), 1)]
    assert daily[0].mean == pytest.approx((0.6 - 0.2) / 2)
    with pytest.raises(ValueError, match="1 d buckets"):
        daily_from_series("X", bucketize(seconds, probs, "1h"))


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="min_volume"):
        backtest([], {}, min_volume=0)
    with pytest.raises(ValueError, match="min_abs"):
        backtest([], {}, min_abs=2)
    empty = backtest([], {})
    assert empty.rows == [] and empty.pooled.days == 0 and empty.pooled.verdict.startswith("too few")
