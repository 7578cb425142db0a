from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, date, datetime

import numpy as np
import pytest

from bench.datasets import DATASETS
from ml.sentiment.stocknet import (
    daily_returns,
    iter_tweets,
    parse_created_at,
    read_movements,
    read_prices,
)

REAL = DATASETS / "stocknet_tweets_prices"


def tweet(ticker: str, created_at: str, tokens: list[str], day: str = "2014-01-02") -> str:
    return json.dumps({"ticker": ticker, "date": day, "created_at": created_at, "tokens": tokens, "user_id_str": "1"})


# The real file's order: by ticker, then by the authors' date; not by time.
LINES = [
    tweet("AAPL", "Thu Jan 02 15:00:00 +0000 2014", ["$", "aapl", "beats", "estimates", "URL"]),
    tweet("AAPL", "Wed Jan 01 23:10:08 +0000 2014", ["rt", "AT_USER", "$", "aapl", "up"]),
    "{not json",
    tweet("AAPL", "Fri Jan 03 09:00:00 +0000 2014", ["aapl", "flat"]),
    "",
    tweet("GOOG", "Thu Jan 02 10:30:00 +0000 2014", ["$", "goog", "falls"]),
    json.dumps({"ticker": "GOOG", "date": "2014-01-02", "tokens": ["no", "time"]}),
    tweet("GOOG", "sometime in January", ["bad", "time"]),
    tweet("MSFT", "Thu Jan 02 10:30:00 +0100 2014", ["$", "msft", "steady"]),  # 09:30 UTC
    tweet("MSFT", "Sat Jan 04 12:00:00 +0000 2014", ["weekend", "$", "msft"]),
]


@pytest.fixture
def tweets_file(tmp_path):
    path = tmp_path / "tweets_preprocessed.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(LINES) + "\n")
    return tmp_path


def test_tweets_come_in_time_order_with_a_report(tweets_file):
    report: Counter[str] = Counter()
    tweets = list(iter_tweets(tweets_file, report=report))
    assert [(t.symbol, t.created_at.isoformat()) for t in tweets] == [
        ("AAPL", "2014-01-01T23:10:08+00:00"),
        ("MSFT", "2014-01-02T09:30:00+00:00"),
        ("GOOG", "2014-01-02T10:30:00+00:00"),
        ("AAPL", "2014-01-02T15:00:00+00:00"),
        ("AAPL", "2014-01-03T09:00:00+00:00"),
        ("MSFT", "2014-01-04T12:00:00+00:00"),
    ]
    assert tweets[3].text == "$aapl beats estimates URL"
    assert all(t.created_at.tzinfo is UTC for t in tweets)
    assert dict(report) == {
        "lines": 10,
        "kept": 6,
        "skipped_malformed_json": 1,
        "skipped_blank": 1,
        "skipped_missing_field": 1,
        "skipped_bad_timestamp": 1,
        "passes": 1,
    }


def test_small_buffer_streams_in_several_passes_in_the_same_order(tweets_file):
    report: Counter[str] = Counter()
    streamed = list(iter_tweets(tweets_file, max_buffer=2, report=report))
    assert streamed == list(iter_tweets(tweets_file))
    assert report["passes"] > 2 and report["kept"] == 6


def test_symbol_and_date_filters(tweets_file):
    report: Counter[str] = Counter()
    tweets = list(
        iter_tweets(
            tweets_file,
            symbols=["$aapl", "msft"],
            start=date(2014, 1, 2),
            end=datetime(2014, 1, 3, 12, tzinfo=UTC),
            report=report,
        )
    )
    assert [(t.symbol, t.created_at.day) for t in tweets] == [("MSFT", 2), ("AAPL", 2), ("AAPL", 3)]
    assert report["filtered_symbol"] == 1 and report["filtered_date"] == 2
    with pytest.raises(ValueError, match="naive datetime"):
        list(iter_tweets(tweets_file, start=datetime(2014, 1, 2)))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no StockNet tweets"):
        list(iter_tweets(tmp_path))


def test_created_at_formats():
    assert parse_created_at("Wed Jan 01 03:59:03 -0500 2014") == datetime(2014, 1, 1, 8, 59, 3, tzinfo=UTC)
    assert parse_created_at("2014-01-01T03:59:03+00:00") == datetime(2014, 1, 1, 3, 59, 3, tzinfo=UTC)
    with pytest.raises(ValueError, match="without offset"):
        parse_created_at("2014-01-01T03:59:03")


def test_prices_returns_and_bad_rows(tmp_path):
    raw = tmp_path / "price_raw"
    raw.mkdir()
    (raw / "AAPL.csv").write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2014-01-03,10,11,9,10.5,10.0,100\n"
        "2014-01-02,9,10,8,9.5,8.0,100\n"
        "2014-01-06,null,null,null,null,null,null\n"
        "2014-01-03,99,99,99,99,99,1\n"
        "2014-01-07,11,12,10,11.5,11.0,100\n",
        encoding="utf-8",
    )
    (raw / "GOOG.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\n", encoding="utf-8")
    report: Counter[str] = Counter()
    prices = read_prices(tmp_path, report=report)
    assert list(prices) == ["AAPL"]
    aapl = prices["AAPL"]
    assert aapl.dates == [date(2014, 1, 2), date(2014, 1, 3), date(2014, 1, 7)]
    assert aapl.open.tolist() == [9, 10, 11] and aapl.close.tolist() == [9.5, 10.5, 11.5]
    returns = daily_returns(prices)["AAPL"]
    assert [d for d, _ in returns] == [date(2014, 1, 3), date(2014, 1, 7)]
    assert [r for _, r in returns] == pytest.approx([0.25, 0.1])  # 8 -> 10 -> 11 (adjusted close)
    assert dict(report) == {"rows": 5, "kept": 3, "skipped_bad_row": 1, "skipped_duplicate_date": 1}


def test_preprocessed_movements(tmp_path):
    folder = tmp_path / "price_preprocessed"
    folder.mkdir()
    (folder / "AAPL.txt").write_text(
        "2014-01-03\t0.25\t1\t1\t1\t1\t100\n2014-01-02\t-0.01\t1\t1\t1\t1\t100\ngarbage\n", encoding="utf-8"
    )
    report: Counter[str] = Counter()
    assert read_movements(tmp_path, report=report) == {"AAPL": [(date(2014, 1, 2), -0.01), (date(2014, 1, 3), 0.25)]}
    assert report["skipped_bad_row"] == 1


@pytest.mark.skipif(not (REAL / "tweets_preprocessed.jsonl.gz").is_file(), reason="StockNet dataset not present")
def test_real_dataset_slice():
    report: Counter[str] = Counter()
    tweets = list(
        iter_tweets(REAL, symbols=["AAPL", "GOOG"], start=date(2015, 6, 1), end=date(2015, 7, 1), report=report)
    )
    assert report["lines"] == 106_338 and report["skipped_malformed_json"] == 0
    assert {t.symbol for t in tweets} == {"AAPL", "GOOG"} and len(tweets) > 500
    stamps = [t.created_at for t in tweets]
    assert stamps == sorted(stamps) and stamps[0] >= datetime(2015, 6, 1, tzinfo=UTC)
    prices = read_prices(REAL, symbols=["AAPL"])
    movements = dict(read_movements(REAL, symbols=["AAPL"])["AAPL"])
    returns = daily_returns(prices)["AAPL"]
    shared = [(r, movements[d]) for d, r in returns if d in movements]
    assert len(shared) > 1000
    assert np.allclose([a for a, _ in shared], [b for _, b in shared], atol=1e-5)
