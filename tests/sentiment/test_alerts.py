"""Alert rules evaluated as scores are committed: each condition fires and cools down, on real
SeriesBucket rows written by the scoring pipeline (keyword model), per entity and per watchlist."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connections

from apps.sentiment.models import Alert, AlertDelivery, AlertRule, Entity, SeriesBucket
from apps.sentiment.services.alerting import alerts_evaluate, rule_condition, rule_evaluate
from tests.sentiment.conftest import T0
from tests.sentiment.fixtures_alerts import BEARISH, BULLISH, NEUTRAL, deliver_inline, make_rule, score, texts

__all__ = ["deliver_inline", "make_rule", "score"]  # fixtures used by name

pytestmark = pytest.mark.django_db
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def at(*minutes: int) -> list:
    return [T0 + m * MIN for m in minutes]


def alerts(**lookup) -> list[Alert]:
    return list(Alert.objects.filter(**lookup).order_by("fired_at", "id"))


def test_level_below_fires_on_bearish_news_keeps_the_documents_and_cools_down(score, make_rule):
    # given a rule on AAPL: hourly mean below -0.3 with at least 2 mentions, cooldown 1 h
    rule = make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, min_volume=2, cooldown_s=3600)

    # when three bearish headlines about AAPL are scored at 09:10-09:12
    score(texts(BEARISH, "AAPL", at(10, 11, 12)))

    # then one alert, with its value, the window it looked at and the three documents
    [alert] = alerts(rule=rule)
    assert alert.entity.symbol == "AAPL" and alert.status == Alert.Status.OPEN
    assert alert.value == pytest.approx(-0.7) and alert.threshold == -0.3
    assert alert.message == "AAPL mean sentiment -0.70 over 1 h is below -0.30"
    assert (alert.window_start, alert.window_end) == (T0, T0 + HOUR)
    assert alert.fired_at == T0 + 12 * MIN  # the data's time: the newest document
    assert alert.documents.count() == 3
    assert set(alert.deliveries.values_list("channel", "status")) == {("socket", "sent")}

    # when more bearish news comes 18 minutes later: still in the cooldown
    score(texts(BEARISH, "AAPL", at(30, 31)))
    assert len(alerts(rule=rule)) == 1

    # when it comes 68 minutes after the alert: the cooldown is over and it fires again
    score(texts(BEARISH, "AAPL", at(80, 81)))
    fired = alerts(rule=rule)
    assert len(fired) == 2
    assert fired[1].fired_at == T0 + 81 * MIN and fired[1].window_start == T0 + HOUR


def test_level_below_needs_the_minimum_volume_and_the_level(score, make_rule):
    rule = make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, min_volume=3)
    score(texts(BEARISH, "AAPL", at(5, 6)))  # mean -0.7, but two mentions: under the minimum volume
    assert alerts(rule=rule) == []
    score(texts(NEUTRAL, "AAPL", at(7, 8)))  # four mentions now, mean -0.35: below the level
    assert len(alerts(rule=rule)) == 1
    score(texts(NEUTRAL, "AAPL", at(61, 62, 63)))  # the next hour is neutral: mean 0
    assert len(alerts(rule=rule)) == 1


def test_level_above_fires_on_bullish_news_only(score, make_rule):
    rule = make_rule(condition=AlertRule.Condition.LEVEL_ABOVE, threshold=0.5, min_volume=2)
    score(texts(BEARISH, "AAPL", at(1, 2)))
    assert alerts(rule=rule) == []
    score(texts(BULLISH, "AAPL", at(61, 62, 63)))
    [alert] = alerts(rule=rule)
    assert alert.value == pytest.approx(0.7)
    assert "above 0.50" in alert.message
    # the documents are the ones of the window that crossed, the most bullish first
    assert all("beats" in d.text for d in alert.documents.all()) and alert.documents.count() == 3


def test_change_fires_on_a_fall_between_two_windows_and_not_on_a_rise(score, make_rule):
    fall = make_rule(condition=AlertRule.Condition.CHANGE, threshold=-0.5, window=1, min_volume=2)
    rise = make_rule(condition=AlertRule.Condition.CHANGE, threshold=0.5, window=1, min_volume=2)
    score(texts(BULLISH, "AAPL", at(10, 20)))  # 09:00 bucket: +0.7
    assert alerts() == []  # nothing before it to compare with
    score(texts(BEARISH, "AAPL", at(70, 80)))  # 10:00 bucket: -0.7
    [alert] = alerts(rule=fall)
    assert alert.value == pytest.approx(-1.4)
    assert "fell 1.40" in alert.message and "from 0.70 to -0.70" in alert.message
    assert alert.window_start == T0 + HOUR
    assert alerts(rule=rise) == []
    score(texts(BULLISH, "AAPL", at(130, 140)))  # 11:00 bucket: back up to +0.7
    assert len(alerts(rule=rise)) == 1


def test_volume_spike_fires_against_its_baseline(score, make_rule):
    rule = make_rule(condition=AlertRule.Condition.VOLUME_SPIKE, threshold=3.0, baseline=6, min_volume=5, cooldown_s=0)
    for hour in range(6):  # one mention an hour: the baseline
        score(texts(NEUTRAL, "AAPL", [T0 + hour * HOUR + 5 * MIN]))
    assert alerts(rule=rule) == []
    score(texts(NEUTRAL, "AAPL", [T0 + 6 * HOUR + m * MIN for m in range(1, 9)]))  # eight in the 7th hour
    [alert] = alerts(rule=rule)
    assert alert.value == pytest.approx((8 - 1) / 1.0)  # std 0 and mean 1: the spread floors at 1
    assert alert.documents.count() == 8
    assert "volume 8 in 1 h" in alert.message


def test_a_watchlist_rule_watches_each_member_separately(score, make_rule):
    rule = make_rule(watchlist="Tech", condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, min_volume=2)
    score(texts(BEARISH, "MSFT", at(1, 2)) + texts(BEARISH, "TSLA", at(3, 4)) + texts(BULLISH, "AAPL", at(5, 6)))
    assert sorted(a.entity.symbol for a in alerts(rule=rule)) == ["MSFT", "TSLA"]
    # MSFT cooling down does not stop TSLA; an entity off the watchlist is not watched
    Entity.objects.create(symbol="IBM", name="International Business Machines")
    score(texts(BEARISH, "IBM", at(7, 8)))
    assert sorted(a.entity.symbol for a in alerts(rule=rule)) == ["MSFT", "TSLA"]


def test_disabled_rules_and_rescored_bases_do_not_fire(score, make_rule):
    rule = make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, enabled=False)
    score(texts(BEARISH, "AAPL", at(1, 2)))
    assert alerts(rule=rule) == []
    # the version basis got the same buckets, but only the live basis is watched
    assert SeriesBucket.objects.exclude(basis=SeriesBucket.LIVE).exists()


def test_one_batch_spanning_hours_fires_where_it_crossed_with_the_cooldown_in_data_time(score, make_rule):
    # a replayed stretch of four bearish hours scored in one batch, cooldown 2 h
    rule = make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, min_volume=2, cooldown_s=7200)
    score(texts(BEARISH, "AAPL", [T0 + h * HOUR + m * MIN for h in range(4) for m in (10, 20)]))
    fired = alerts(rule=rule)
    assert [a.window_start for a in fired] == [T0, T0 + 2 * HOUR]
    assert [a.fired_at for a in fired] == [T0 + HOUR, T0 + 3 * HOUR]  # each hour judged as of its end


def test_evaluating_the_same_range_twice_fires_once(score, make_rule):
    rule = make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, cooldown_s=0)
    score(texts(BEARISH, "AAPL", at(1, 2)))
    aapl = Entity.objects.get(symbol="AAPL")
    alerts_evaluate(entity_ids=[aapl.pk], start=T0 + MIN, end=T0 + 2 * MIN)  # the signal handled again
    alerts_evaluate(entity_ids=[aapl.pk], start=T0 + MIN, end=T0 + 2 * MIN)
    assert len(alerts(rule=rule)) == 1
    assert AlertDelivery.objects.filter(alert__rule=rule).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_evaluating_at_once_fire_one_alert(score, make_rule):
    # given bearish buckets and a rule, and two threads (each its own DB connection) evaluating it
    rule = make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, enabled=False)
    score(texts(BEARISH, "AAPL", at(1, 2, 3)))
    AlertRule.objects.filter(pk=rule.pk).update(enabled=True)
    rule.refresh_from_db()
    aapl = Entity.objects.get(symbol="AAPL")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait(timeout=10)
            rule_evaluate(rule, aapl, T0 + MIN, T0 + 3 * MIN)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    # then exactly one alert: the rule's row lock serialised the two evaluations
    assert errors == []
    assert Alert.objects.filter(rule=rule).count() == 1


def test_rule_bounds_come_from_the_conditions(make_rule):
    with pytest.raises(ValidationError, match="threshold must be a number in"):
        rule_condition(AlertRule(condition=AlertRule.Condition.LEVEL_ABOVE, threshold=1.5, window=1, min_volume=1))
    with pytest.raises(ValidationError, match="must not be 0"):
        rule_condition(AlertRule(condition=AlertRule.Condition.CHANGE, threshold=0.0, window=1, min_volume=1))
    with pytest.raises(ValidationError, match="baseline must be"):
        rule_condition(AlertRule(condition=AlertRule.Condition.VOLUME_SPIKE, threshold=3, baseline=1, min_volume=1))
    condition = rule_condition(AlertRule(condition=AlertRule.Condition.CHANGE, threshold=-0.2, window=3, min_volume=4))
    assert condition.params() == {"direction": "down", "threshold": 0.2, "window": 3, "min_volume": 4}
