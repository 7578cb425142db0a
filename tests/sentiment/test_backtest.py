"""Backtest of daily sentiment against the next trading day's return, on stored SeriesBucket and
Price rows: a predictive series shows a signal, an unrelated one says "no signal" plainly; the
page, the API and the command."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.test import Client

from apps.sentiment.models import BacktestRun, Entity, Price, SeriesBucket
from apps.sentiment.services.backtest import BacktestParams, backtest_run

pytestmark = pytest.mark.django_db
DAYS = 90


def trading_days(n: int) -> list[date]:
    out, day = [], date(2024, 1, 1)
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def market(symbols: tuple[str, ...], *, predictive: bool, seed: int = 7) -> None:
    """Prices on weekdays and 5 mentions a day whose mean is the sign of the next return
    (``predictive``) or a coin flip."""
    rng = random.Random(seed)
    days = trading_days(DAYS)
    for symbol in symbols:
        entity = Entity.objects.create(symbol=symbol, name=f"{symbol} Corp")
        returns = [rng.gauss(0, 0.01) for _ in days]
        close = 100.0
        for day, r in zip(days, returns, strict=True):
            close *= 1 + r
            Price.objects.create(entity=entity, date=day, close=close, adj_close=close)
        for k, day in enumerate(days[:-1]):
            sign = (1 if returns[k + 1] > 0 else -1) if predictive else rng.choice((-1, 1))
            SeriesBucket.objects.create(
                entity=entity,
                width_s=86400,
                start=datetime(day.year, day.month, day.day, tzinfo=UTC),
                n=5,
                sum_value=5 * 0.6 * sign,
                n_positive=5 * (sign > 0),
                n_negative=5 * (sign < 0),
            )


def test_predictive_sentiment_shows_a_signal_per_symbol_and_pooled():
    market(("AAA", "BBB"), predictive=True)
    run = backtest_run(params=BacktestParams(min_volume=3, permutations=200))
    pooled = run.results["pooled"]
    assert pooled["hit_rate"] == 1.0 and pooled["hit_n"] == 2 * (DAYS - 2)
    assert pooled["pearson"] > 0.5 and pooled["pearson_p"] < 0.001
    assert pooled["verdict"].startswith("signal")
    assert [row["symbol"] for row in run.results["rows"]] == ["AAA", "BBB"]
    assert run.results["summary"].startswith("Sentiment predicted the next day's direction better")
    assert 0.3 < pooled["momentum"] < 0.7 and 0.3 < pooled["always_up"] < 0.7  # the baselines beside it


def test_unrelated_sentiment_says_no_signal():
    market(("AAA", "BBB", "CCC"), predictive=False)
    run = backtest_run(params=BacktestParams(permutations=200))
    pooled = run.results["pooled"]
    assert not pooled["verdict"].startswith("signal")
    assert pooled["hit_ci"][0] < 0.5 < pooled["hit_ci"][1]
    assert run.results["summary"].startswith(("No signal", "Sentiment did worse"))


def test_filters_and_bad_parameters():
    market(("AAA", "BBB"), predictive=True)
    only = backtest_run(params=BacktestParams(symbols=("bbb",), since=date(2024, 2, 1), permutations=0))
    assert [row["symbol"] for row in only.results["rows"]] == ["BBB"]
    assert only.results["pooled"]["hit_n"] < DAYS - 20
    with pytest.raises(Exception, match="no prices for ZZZ"):
        backtest_run(params=BacktestParams(symbols=("ZZZ",)))
    with pytest.raises(Exception, match="min_abs"):
        backtest_run(params=BacktestParams(min_abs=2.0))
    with pytest.raises(Exception, match="no daily series with basis"):
        backtest_run(params=BacktestParams(basis="never-rescored"))


def test_page_api_and_command(make_user, analyst_client, capsys):
    market(("AAA",), predictive=True)
    client = Client()
    client.force_login(make_user("analyst"))
    form = client.get("/sentiment/backtests/").content.decode()
    assert 'name="min_volume"' in form and 'name="permutations"' in form
    response = client.post(
        "/sentiment/backtests/",
        {"basis": "live", "min_volume": "3", "min_abs": "0.05", "permutations": "100", "symbols": ""},
    )
    run = BacktestRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/sentiment/backtests/{run.pk}/"
    html = client.get(f"/sentiment/backtests/{run.pk}/").content.decode()
    assert "Sentiment predicted the next day" in html and "all (pooled)" in html and "Momentum" in html
    bad = client.post(
        "/sentiment/backtests/", {"basis": "live", "min_volume": "0", "min_abs": "0.05", "permutations": "100"}
    )
    assert bad.status_code == 400

    made = analyst_client.post("/api/sentiment/backtests/", {"symbols": ["AAA"], "permutations": 50}, format="json")
    assert made.status_code == 201 and made.json()["results"]["pooled"]["verdict"].startswith("signal")
    assert analyst_client.get(f"/api/sentiment/backtests/{made.json()['id']}/").status_code == 200
    assert analyst_client.post("/api/sentiment/backtests/", {"min_abs": 3}, format="json").status_code == 400

    call_command("sentiment_backtest", "--permutations", "0", "--symbols", "AAA")
    out = capsys.readouterr().out
    assert "ALL" in out and "AAA" in out and "signal" in out
    assert BacktestRun.objects.count() == 3
