"""Backtest: did an entity's daily sentiment predict its next trading day's return?

Daily sentiment comes from the 1-day ``SeriesBucket`` rows of one basis (``live``: the scores
documents got on arrival; or a model version that rescored the history), returns from the
``Price`` rows (adjusted close where known, else close). ``ml.sentiment.backtest`` aligns
them (a trading day's sentiment, its weekend included, against the next trading day's
return), and computes per symbol and pooled: Pearson and Spearman correlation with p-values,
and the hit rate with a 95 % Wilson interval beside two naive baselines (momentum: tomorrow
moves like today; always up). The stored run says plainly whether there was any signal.

``BacktestParams`` declares the knobs once (bounds and help as field metadata): the page's
form, the API serializer and the ``sentiment_backtest`` command are derived from it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError

from apps.sentiment.models import BacktestRun, Entity, Price, SeriesBucket
from ml.sentiment.backtest import POOLED, BacktestReport, DailySentiment, backtest
from ml.sentiment.stocknet import Prices, daily_returns

DAY = SeriesBucket.Width.DAY.value


def _knob(default: Any, *, help: str, low: float | None = None, high: float | None = None) -> Any:  # noqa: A002
    return field(default=default, metadata={"help": help, "low": low, "high": high})


@dataclass(frozen=True)
class BacktestParams:
    """What a backtest run may set; each field's metadata has its bounds and help."""

    basis: str = _knob(
        SeriesBucket.LIVE,
        help="Series basis: 'live' (scores as seen then) or a model version that rescored the history (as scored now).",
    )
    min_volume: int = _knob(3, low=1, high=100_000, help="Trading days with fewer mentions than this are left out.")
    min_abs: float = _knob(
        0.05,
        low=0.0,
        high=1.0,
        help="The hit rate counts days with |mean sentiment| at least this (a call); correlations use every day.",
    )
    permutations: int = _knob(1000, low=0, high=20_000, help="Shuffles for the permutation p-values (0: none).")
    since: date | None = _knob(None, help="First day (UTC) of sentiment to use; empty: from the first.")
    until: date | None = _knob(None, help="Last day (UTC) of sentiment to use; empty: to the last.")
    symbols: tuple[str, ...] = _knob((), help="Symbols to test; empty: every entity with prices.")

    def clean(self) -> BacktestParams:
        """Checks the bounds; returns self.

        Raises:
            ValidationError: a value out of bounds, or ``since`` after ``until``.
        """
        errors = {}
        for f in dataclasses.fields(self):
            low, high = f.metadata["low"], f.metadata["high"]
            value = getattr(self, f.name)
            if low is not None and not (isinstance(value, int | float) and low <= value <= high):
                errors[f.name] = f"must be between {low:g} and {high:g}, not {value!r}"
        if self.since and self.until and self.since > self.until:
            errors["until"] = "must not be before since"
        if errors:
            raise ValidationError(errors)
        return self

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        data["until"] = self.until.isoformat() if self.until else None
        data["symbols"] = list(self.symbols)
        return data


def param_fields() -> list[dataclasses.Field]:
    """The knobs, for forms, serializers and command-line flags."""
    return list(dataclasses.fields(BacktestParams))


def basis_choices() -> list[str]:
    """``live`` and every version that has daily buckets."""
    versions = (
        SeriesBucket.objects.filter(width_s=DAY)
        .exclude(basis=SeriesBucket.LIVE)
        .values_list("basis", flat=True)
        .distinct()
        .order_by("basis")
    )
    return [SeriesBucket.LIVE, *versions]


def _returns(entities: list[Entity]) -> dict[str, list[tuple[date, float]]]:
    by_entity: dict[int, list[Price]] = {e.pk: [] for e in entities}
    for price in Price.objects.filter(entity__in=entities).order_by("entity", "date"):
        by_entity[price.entity_id].append(price)
    prices = {}
    for entity in entities:
        rows = [p for p in by_entity[entity.pk] if (p.adj_close or p.close) and (p.adj_close or p.close) > 0]
        if len(rows) >= 2:
            closes = np.array([p.close for p in rows], dtype=np.float64)
            adjusted = np.array([p.adj_close or p.close for p in rows], dtype=np.float64)
            opens = np.array([p.open if p.open is not None else math.nan for p in rows], dtype=np.float64)
            prices[entity.symbol] = Prices(entity.symbol, [p.date for p in rows], opens, closes, adjusted)
    return daily_returns(prices)


def _sentiment(entities: list[Entity], params: BacktestParams) -> list[DailySentiment]:
    buckets = SeriesBucket.objects.filter(entity__in=entities, basis=params.basis, width_s=DAY, n__gt=0)
    if params.since:
        buckets = buckets.filter(start__gte=datetime.combine(params.since, time.min, tzinfo=UTC))
    if params.until:
        buckets = buckets.filter(start__lte=datetime.combine(params.until, time.min, tzinfo=UTC))
    symbol_of = {e.pk: e.symbol for e in entities}
    return [
        DailySentiment(symbol_of[b.entity_id], b.start.date(), b.sum_value / b.n, b.n)
        for b in buckets.order_by("entity", "start")
    ]


def _entities(params: BacktestParams) -> list[Entity]:
    entities = Entity.objects.filter(prices__isnull=False).distinct()
    if params.symbols:
        wanted = {s.strip().upper() for s in params.symbols if s.strip()}
        entities = entities.filter(symbol__in=wanted)
        missing = wanted - set(entities.values_list("symbol", flat=True))
        if missing:
            raise ValidationError({"symbols": f"no prices for {', '.join(sorted(missing))}"})
    return list(entities.order_by("symbol"))


def summary_of(report: BacktestReport) -> str:
    """One plain sentence about the pooled result."""
    pooled = report.pooled
    if pooled.hit.n == 0:
        return "No trading day had both sentiment and a next-day return: nothing to test."
    rate = f"hit rate {pooled.hit.rate:.3f} [{pooled.hit.ci_low:.3f}, {pooled.hit.ci_high:.3f}] on {pooled.hit.n} days"
    if pooled.verdict.startswith("signal"):
        return f"Sentiment predicted the next day's direction better than the naive baselines ({rate})."
    if pooled.verdict.startswith("worse"):
        return f"Sentiment did worse than a naive baseline ({rate}): no usable signal."
    if pooled.verdict.startswith("too few"):
        return f"Too few days to tell ({rate}); replay or ingest more history."
    return f"No signal: the hit rate is within chance of the naive baselines ({rate})."


def backtest_run(*, params: BacktestParams, user: Any = None) -> BacktestRun:
    """Runs the backtest and stores it (a few seconds for years of daily data).

    Raises:
        ValidationError: bad parameters, an unknown basis, or symbols without prices.
    """
    params = params.clean()
    if params.basis not in basis_choices():
        raise ValidationError({"basis": f"no daily series with basis {params.basis!r}"})
    entities = _entities(params)
    returns = _returns(entities)
    sentiment = _sentiment([e for e in entities if e.symbol in returns], params)
    try:
        report = backtest(
            sentiment, returns, min_volume=params.min_volume, min_abs=params.min_abs, permutations=params.permutations
        )
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    results = {
        "rows": [row.as_dict() for row in report.rows],
        "pooled": report.pooled.as_dict(),
        "dropped": report.dropped,
        "summary": summary_of(report),
        "table": report.table(),
        "sentiment_days": len(sentiment),
        "symbols_with_prices": sorted(returns),
        "pooled_name": POOLED,
    }
    return BacktestRun.objects.create(basis=params.basis, params=params.to_json(), results=results, created_by=user)
