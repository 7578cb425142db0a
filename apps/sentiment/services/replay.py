"""Replay of the StockNet tweet stream through ingestion, on an accelerated clock.

Tweets of the chosen symbols and dates go through ``documents_ingest`` (the same path as a
feed or a push) under the "StockNet replay" source, with their original times as
``published_at``. ``speed`` is data seconds per wall second (3600: an hour of tweets each
second); without ``sleep`` the stream goes as fast as it can (tests, backtests). Scoring runs
``inline`` in this process after each chunk, so the series exist when the replay returns, or
is left to the workers (``queue``). The symbols' daily prices are imported too.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from django.conf import settings

from apps.sentiment.models import Source
from apps.sentiment.services.documents import IngestItem, documents_ingest, source_system
from apps.sentiment.services.prices import prices_import_stocknet
from apps.sentiment.services.scoring import documents_score_pending

log = logging.getLogger(__name__)

DATASET = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "stocknet_tweets_prices"
CHUNK = 500  # tweets per ingest transaction (and per inline scoring round)
MAX_SLEEP_S = 1.0  # wake at least this often while waiting for the clock, to flush and report


@dataclass
class ReplayReport:
    tweets: int = 0
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    scored: int = 0
    prices: int = 0
    first: datetime | None = None
    last: datetime | None = None
    reader: dict[str, int] = field(default_factory=dict)  # the reader's counts (lines, kept, skipped_*)
    wall_s: float = 0.0


def replay_stocknet(
    *,
    symbols: list[str],
    start: date | datetime | None = None,
    end: date | datetime | None = None,
    path: Path | str = DATASET,
    speed: float = 3600.0,
    sleep: bool = True,
    scoring: Literal["inline", "queue"] = "inline",
    prices: bool = True,
    limit: int | None = None,
    progress: Callable[[ReplayReport], None] | None = None,
) -> ReplayReport:
    """Streams the tweets of ``symbols`` in ``[start, end)`` through ingestion (see the module doc).

    Raises:
        FileNotFoundError: no StockNet data at ``path``.
        ValueError: a speed that is not positive.
    """
    from ml.sentiment.stocknet import iter_tweets

    if speed <= 0:
        raise ValueError("speed must be > 0 (data seconds per wall second)")
    source = source_system(Source.Kind.REPLAY)
    report = ReplayReport()
    counts: Counter[str] = Counter()
    started = time.monotonic()
    pending: list[IngestItem] = []

    def flush() -> None:
        if not pending:
            return
        ingested = documents_ingest(source, pending, score=scoring == "queue")
        report.created += ingested.created
        report.duplicates += ingested.duplicates
        report.rejected += len(ingested.rejected)
        pending.clear()
        if scoring == "inline":
            report.scored += documents_score_pending()["documents"]
        if progress is not None:
            progress(report)

    for tweet in iter_tweets(path, start=start, end=end, symbols=symbols, report=counts):
        if limit is not None and report.tweets >= limit:
            break
        report.first = report.first or tweet.created_at
        report.last = tweet.created_at
        report.tweets += 1
        if sleep:
            due = (tweet.created_at - report.first).total_seconds() / speed
            while (wait := due - (time.monotonic() - started)) > 0:
                flush()  # what is due now is in before the clock moves on
                time.sleep(min(wait, MAX_SLEEP_S))
        pending.append(
            IngestItem(
                text=tweet.text, published_at=tweet.created_at, language="en", meta={"stocknet_symbol": tweet.symbol}
            )
        )
        if len(pending) >= CHUNK:
            flush()
    flush()
    report.reader = dict(counts)
    if prices:
        report.prices = prices_import_stocknet(path, symbols=symbols).stored
    report.wall_s = time.monotonic() - started
    log.info(
        "replayed %d tweets (%d new) of %s in %.1f s", report.tweets, report.created, ",".join(symbols), report.wall_s
    )
    return report


def replay_summary(report: ReplayReport) -> dict[str, Any]:
    return {
        "tweets": report.tweets,
        "created": report.created,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "scored": report.scored,
        "prices": report.prices,
        "first": report.first.isoformat() if report.first else None,
        "last": report.last.isoformat() if report.last else None,
        "wall_s": round(report.wall_s, 2),
    }
