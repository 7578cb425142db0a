"""Replay of a small StockNet slice through ingestion: documents, series and prices.
Skipped when the data set is not beside the repository (../shared/datasets)."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.management import call_command
from django.db.models import Sum

from apps.sentiment.models import Document, EntityScore, Price, SeriesBucket, Source
from apps.sentiment.services import replay
from apps.sentiment.services.replay import DATASET, replay_stocknet

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not DATASET.exists(), reason=f"StockNet is not at {DATASET}"),
]
SLICE = {"symbols": ["AAPL", "MSFT"], "start": date(2015, 1, 5), "end": date(2015, 1, 8)}


def test_a_slice_replays_into_documents_series_and_prices(watchlist):
    report = replay_stocknet(**SLICE, sleep=False)

    assert report.tweets > 50 and report.created + report.duplicates == report.tweets
    assert report.scored == report.created == Document.objects.count()
    assert Document.objects.filter(source__kind=Source.Kind.REPLAY).count() == report.created
    assert report.first.date() >= SLICE["start"] and report.last.date() < SLICE["end"]
    first = Document.objects.order_by("published_at").first()
    assert first.published_at == report.first  # the tweet's own time, not the time of the replay
    assert first.meta["stocknet_symbol"] in ("AAPL", "MSFT")
    aapl = EntityScore.objects.filter(entity__symbol="AAPL", live=True).count()
    assert aapl > 40  # nearly every AAPL tweet carries $aapl
    days = SeriesBucket.objects.filter(entity__symbol="AAPL", basis=SeriesBucket.LIVE, width_s=86400)
    assert days.count() == 3 and days.aggregate(n=Sum("n"))["n"] == aapl
    assert Price.objects.filter(entity__symbol="AAPL", date=date(2015, 1, 5)).exists()
    assert report.prices == Price.objects.count() > 500  # both symbols' whole price history

    again = replay_stocknet(**SLICE, sleep=False, prices=False)
    assert (again.created, again.duplicates) == (0, again.tweets)


def test_the_clock_waits_data_time_divided_by_speed(watchlist, monkeypatch):
    clock = {"now": 0.0, "slept": 0.0}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds
        clock["slept"] += seconds

    monkeypatch.setattr(replay.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(replay.time, "sleep", sleep)

    report = replay_stocknet(symbols=["MSFT"], start=date(2015, 1, 5), end=date(2015, 1, 8), speed=3600, prices=False)

    data_seconds = (report.last - report.first).total_seconds()
    assert clock["slept"] == pytest.approx(data_seconds / 3600, abs=1e-6)
    assert Document.objects.count() == report.created > 0


def test_the_command_replays_and_warns_about_symbols_off_the_watchlist(watchlist, capsys):
    call_command(
        "sentiment_replay",
        "--symbols",
        "MSFT,IBM",
        "--start",
        "2015-01-05",
        "--end",
        "2015-01-07",
        "--no-sleep",
        "--no-prices",
    )

    out = capsys.readouterr().out
    assert "not on the watchlist: IBM" in out
    assert "replay:" in out and Document.objects.exists()
