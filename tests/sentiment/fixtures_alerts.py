"""Fixtures of the alerting tests (imported by those modules; conftest.py has the shared ones).

Documents go through the real pipeline: ingest -> the scoring task (inline, keyword model)
-> SeriesBucket rows -> ``scores_committed`` after the commit -> alert rules. Deliveries run
inline too (``delivery.RUN_INLINE``), Celery's eager ``apply`` with retries at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

BEARISH = "{symbol} misses estimates and shares fall (report {n})"
BULLISH = "{symbol} beats estimates and shares rise (report {n})"
NEUTRAL = "{symbol} schedules its annual meeting (notice {n})"
_numbers = itertools.count(1)


def texts(template: str, symbol: str, times: Iterable[datetime]) -> list[tuple[str, datetime]]:
    """Distinct texts (documents are deduplicated by content) at the given times."""
    return [(template.format(symbol=f"${symbol}", n=next(_numbers)), when) for when in times]


@pytest.fixture
def deliver_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.sentiment.services import delivery

    monkeypatch.setattr(delivery, "RUN_INLINE", True)


@pytest.fixture
def score(ingest, push_source, django_capture_on_commit_callbacks, deliver_inline) -> Callable[..., Any]:
    """``score([(text, published_at), ...])``: ingested, scored and committed; the signal's
    receivers (alert rules, live feed) run as after a real commit."""

    def run(rows: list[tuple[str, datetime]]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            report = ingest(push_source, rows)
        assert report.created == len(rows), report
        return report

    return run


@pytest.fixture
def make_rule(db, watchlist) -> Callable[..., Any]:
    """``make_rule(condition=..., threshold=..., entity="AAPL" | watchlist="Tech", ...)``."""
    from apps.sentiment.models import AlertRule, Entity, Watchlist

    def make(**values: Any) -> AlertRule:
        if isinstance(values.get("entity"), str):
            values["entity"] = Entity.objects.get(symbol=values["entity"])
        if isinstance(values.get("watchlist"), str):
            values["watchlist"] = Watchlist.objects.get(name=values["watchlist"])
        if "watchlist" not in values:
            values.setdefault("entity", Entity.objects.get(symbol="AAPL"))
        values.setdefault("name", f"rule {values['condition']} {values['threshold']}")
        values.setdefault("width_s", 3600)
        values.setdefault("min_volume", 1)
        return AlertRule.objects.create(**values)

    return make


def alert_access_objects() -> dict[str, int]:
    """For the access matrix (after ``tests.sentiment.matrix.sentiment_access_objects``, whose
    MTX entity and document they use): a rule with an open alert, a rule to delete, a backtest run."""
    from apps.sentiment.models import Alert, AlertDelivery, AlertRule, BacktestRun, Document, Entity

    mtx = Entity.objects.get(symbol="MTX")
    rule = AlertRule.objects.create(
        name="matrix rule", entity=mtx, condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3
    )
    doomed = AlertRule.objects.create(
        name="matrix doomed rule", entity=mtx, condition=AlertRule.Condition.LEVEL_ABOVE, threshold=0.3
    )
    alert = Alert.objects.create(
        rule=rule,
        entity=mtx,
        value=-0.5,
        threshold=-0.3,
        message="MTX mean sentiment low",
        window_start=datetime(2025, 3, 3, tzinfo=UTC),
        window_end=datetime(2025, 3, 3, 1, tzinfo=UTC),
    )
    alert.documents.set(Document.objects.filter(source__name="matrix push"))
    failed = AlertDelivery.objects.create(
        alert=alert,
        channel=AlertDelivery.Channel.WEBHOOK,
        attempts=6,
        target="https://hooks.example/x",
        status=AlertDelivery.Status.FAILED,
    )
    run = BacktestRun.objects.create(
        params={"min_volume": 3, "min_abs": 0.05, "permutations": 0},
        results={"summary": "No trading day had both sentiment and a next-day return.", "rows": [], "pooled": {}},
    )
    return {
        "sent_rule": rule.pk,
        "sent_doomed_rule": doomed.pk,
        "sent_alert": alert.pk,
        "sent_backtest": run.pk,
        "sent_delivery": failed.pk,
    }
