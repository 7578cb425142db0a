"""Reader of the StockNet dataset: dated tweets per ticker and daily prices (Xu & Cohen, 2018).

Layout (``stocknet_tweets_prices``, MIT, see its README.txt):

- ``tweets_preprocessed.jsonl.gz``: one JSON object a line, ``{"ticker", "date", "created_at",
  "tokens", "user_id_str"}``; ``created_at`` in Twitter's format (``Wed Jan 01 03:59:03 +0000
  2014``), ``tokens`` lower-cased with URLs as ``URL`` and users as ``AT_USER``. The file is
  ordered by ticker, then by the authors' ``date`` (not by time, and ``date`` is not always
  the UTC day of ``created_at``: late-evening tweets carry the next day). This reader uses
  ``created_at``.
- ``price_raw/<TICKER>.csv``: Yahoo daily ``Date,Open,High,Low,Close,Adj Close,Volume``.
- ``price_preprocessed/<TICKER>.txt``: tab-separated ``date, movement, ...``, where movement is
  the adjusted-close return as a fraction (0.0003 is +0.03 %).

Malformed lines are skipped and counted in a report (a ``Counter`` the caller passes in).
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np

TWEETS_FILE = "tweets_preprocessed.jsonl.gz"
MAX_BUFFER = 200_000  # tweets held in memory at once (~60 MB); the real file has 106,338
_MONTHS = {
    m: i
    for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)
}
_CASHTAG = re.compile(r"\$ (?=[a-z][a-z.\-]*\b)")
_NO_DAY = -(2**31)


class Tweet(NamedTuple):
    """One tweet about one ticker."""

    symbol: str
    created_at: datetime  # aware, UTC
    text: str


def parse_created_at(raw: str) -> datetime:
    """Twitter's ``Wed Jan 01 03:59:03 +0000 2014`` (or an ISO 8601 time with offset) as UTC.

    Raises:
        ValueError: not a time of either form, or an ISO time without offset.
    """
    parts = raw.split()
    if len(parts) == 6 and parts[1] in _MONTHS:
        hour, minute, second = (int(x) for x in parts[3].split(":"))
        offset = parts[4]
        if len(offset) != 5 or offset[0] not in "+-":
            raise ValueError(f"bad UTC offset in {raw!r}")
        shift = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])) * (1 if offset[0] == "+" else -1)
        local = datetime(int(parts[5]), _MONTHS[parts[1]], int(parts[2]), hour, minute, second, tzinfo=UTC)
        return local - shift
    parsed = datetime.fromisoformat(raw.strip())
    if parsed.tzinfo is None:
        raise ValueError(f"time without offset: {raw!r}")
    return parsed.astimezone(UTC)


def detokenize(tokens: list[str] | str) -> str:
    """The preprocessed tokens as one text; ``$ aapl`` becomes the cashtag ``$aapl``."""
    text = tokens if isinstance(tokens, str) else " ".join(str(t) for t in tokens)
    return _CASHTAG.sub("$", text).strip()


def _tweets_path(path: Path) -> Path:
    return path / TWEETS_FILE if path.is_dir() else path


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        yield from fh


def _bound(value: date | datetime | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass an aware datetime (UTC)")
        return value.timestamp()
    return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()


def _parse(raw: bytes) -> tuple[str, Tweet | None]:
    """(outcome, tweet): outcome is ``ok`` or the reason the line is skipped."""
    if not raw.strip():
        return "skipped_blank", None
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "skipped_malformed_json", None
    if not isinstance(record, dict):
        return "skipped_malformed_json", None
    symbol = record.get("ticker")
    created = record.get("created_at")
    words = record.get("tokens", record.get("text"))
    if not isinstance(symbol, str) or not symbol.strip() or not isinstance(created, str) or words is None:
        return "skipped_missing_field", None
    if not isinstance(words, str) and not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
        return "skipped_missing_field", None
    try:
        when = parse_created_at(created)
    except (ValueError, OverflowError):
        return "skipped_bad_timestamp", None
    text = detokenize(words)
    if not text:
        return "skipped_empty_text", None
    return "ok", Tweet(symbol.strip().lstrip("$").upper(), when, text)


def iter_tweets(
    path: Path | str,
    *,
    start: date | datetime | None = None,
    end: date | datetime | None = None,
    symbols: Iterable[str] | None = None,
    report: Counter[str] | None = None,
    max_buffer: int = MAX_BUFFER,
) -> Iterator[Tweet]:
    """Tweets in time order (``created_at``, ties in file order), streamed from the gzip file.

    The first pass reads every line, validates and filters it; if at most ``max_buffer``
    tweets pass, they are sorted and yielded without a second read. Otherwise each tweet's day
    is remembered (4 bytes a line) and later passes read one span of days at a time, holding
    at most ``max_buffer`` tweets (or one day's, if a single day has more).

    Args:
        path: the dataset folder or the ``.jsonl[.gz]`` file.
        start / end: keep ``start <= created_at < end`` (a date means 00:00 UTC).
        symbols: keep only these tickers (case-insensitive, ``$`` optional).
        report: receives counts: ``lines``, ``kept``, ``skipped_*`` (malformed) and
            ``filtered_*`` (outside the filters), ``passes``; complete once the first tweet
            has been produced.
        max_buffer: most tweets held in memory.

    Yields:
        ``Tweet(symbol, created_at, text)``.
    """
    if max_buffer < 1:
        raise ValueError(f"max_buffer must be >= 1, got {max_buffer}")
    file = _tweets_path(Path(path))
    if not file.is_file():
        raise FileNotFoundError(f"no StockNet tweets at {file}")
    lo, hi = _bound(start), _bound(end)
    wanted = {s.strip().lstrip("$").upper() for s in symbols} if symbols is not None else None
    counts: Counter[str] = Counter()
    days = array("i")
    buffer: list[Tweet] | None = []

    for raw in _lines(file):
        counts["lines"] += 1
        outcome, tweet = _parse(raw)
        if tweet is not None and wanted is not None and tweet.symbol not in wanted:
            outcome, tweet = "filtered_symbol", None
        if tweet is not None:
            t = tweet.created_at.timestamp()
            if (lo is not None and t < lo) or (hi is not None and t >= hi):
                outcome, tweet = "filtered_date", None
        counts["kept" if tweet is not None else outcome] += 1
        days.append(int(tweet.created_at.timestamp() // 86_400) if tweet is not None else _NO_DAY)
        if tweet is not None and buffer is not None:
            buffer.append(tweet)
            if len(buffer) > max_buffer:
                buffer = None  # too many: fall back to passes over spans of days
    counts["passes"] = 1
    if buffer is not None:
        if report is not None:
            report.update(counts)
        buffer.sort(key=lambda tw: tw.created_at)
        yield from buffer
        return

    spans = _day_spans(days, max_buffer)
    counts["passes"] += len(spans)
    if report is not None:
        report.update(counts)
    for first, last in spans:
        chunk: list[Tweet] = []
        for day, raw in zip(days, _lines(file), strict=True):
            if first <= day <= last:
                _, tweet = _parse(raw)
                if tweet is not None:
                    chunk.append(tweet)
        chunk.sort(key=lambda tw: tw.created_at)
        yield from chunk


def _day_spans(days: array, max_buffer: int) -> list[tuple[int, int]]:
    """Consecutive day spans holding at most ``max_buffer`` kept tweets each."""
    values = np.frombuffer(days, dtype=np.int32) if len(days) else np.empty(0, dtype=np.int32)
    kept = values[values != _NO_DAY]
    if not len(kept):
        return []
    unique, per_day = np.unique(kept, return_counts=True)
    spans: list[tuple[int, int]] = []
    first, previous, held = int(unique[0]), int(unique[0]), 0
    for day, count in zip(unique.tolist(), per_day.tolist(), strict=True):
        if held and held + count > max_buffer:
            spans.append((first, previous))
            first, held = day, 0
        held += count
        previous = day
    spans.append((first, previous))
    return spans


@dataclass
class Prices:
    """Daily prices of one symbol, in date order.

    Attributes:
        symbol: the ticker.
        dates: trading days.
        open / close / adj_close: prices per day (adjusted close accounts for splits and
            dividends, so returns use it).
    """

    symbol: str
    dates: list[date]
    open: np.ndarray
    close: np.ndarray
    adj_close: np.ndarray

    def returns(self) -> list[tuple[date, float]]:
        """``(day, adj_close[day] / adj_close[previous trading day] - 1)`` from the second day on."""
        if len(self.dates) < 2:
            return []
        ratios = self.adj_close[1:] / self.adj_close[:-1] - 1.0
        return list(zip(self.dates[1:], ratios.tolist(), strict=True))


def _price_files(path: Path, folder: str, suffix: str) -> list[Path]:
    if path.is_file():
        return [path]
    directory = path / folder if (path / folder).is_dir() else path
    files = sorted(directory.glob(f"*{suffix}"))
    if not files:
        raise FileNotFoundError(f"no {suffix} price files under {path}")
    return files


def read_prices(
    path: Path | str, *, symbols: Iterable[str] | None = None, report: Counter[str] | None = None
) -> dict[str, Prices]:
    """Reads ``price_raw/<TICKER>.csv`` files (the dataset folder, that folder, or one file).

    Rows with a missing or non-positive price or an unreadable date are skipped
    (``skipped_bad_row``), as are repeats of a date (``skipped_duplicate_date``, first kept).

    Returns:
        symbol -> Prices, for files with at least one good row.
    """
    wanted = {s.strip().lstrip("$").upper() for s in symbols} if symbols is not None else None
    counts: Counter[str] = Counter()
    out: dict[str, Prices] = {}
    for file in _price_files(Path(path), "price_raw", ".csv"):
        symbol = file.stem.upper()
        if wanted is not None and symbol not in wanted:
            continue
        rows: dict[date, tuple[float, float, float]] = {}
        with open(file, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                counts["rows"] += 1
                try:
                    day = date.fromisoformat((row.get("Date") or "").strip())
                    values = (
                        float(row.get("Open") or "nan"),
                        float(row.get("Close") or "nan"),
                        float(row.get("Adj Close") or "nan"),
                    )
                except ValueError:
                    counts["skipped_bad_row"] += 1
                    continue
                if not all(np.isfinite(v) and v > 0 for v in values):
                    counts["skipped_bad_row"] += 1
                    continue
                if day in rows:
                    counts["skipped_duplicate_date"] += 1
                    continue
                rows[day] = values
        if rows:
            dates = sorted(rows)
            matrix = np.array([rows[d] for d in dates], dtype=np.float64)
            out[symbol] = Prices(symbol, dates, matrix[:, 0], matrix[:, 1], matrix[:, 2])
            counts["kept"] += len(dates)
    if report is not None:
        report.update(counts)
    return out


def read_movements(
    path: Path | str, *, symbols: Iterable[str] | None = None, report: Counter[str] | None = None
) -> dict[str, list[tuple[date, float]]]:
    """Daily returns from ``price_preprocessed/<TICKER>.txt`` (for symbols without raw prices).

    Returns:
        symbol -> ``(day, return)`` in date order.
    """
    wanted = {s.strip().lstrip("$").upper() for s in symbols} if symbols is not None else None
    counts: Counter[str] = Counter()
    out: dict[str, list[tuple[date, float]]] = {}
    for file in _price_files(Path(path), "price_preprocessed", ".txt"):
        symbol = file.stem.upper()
        if wanted is not None and symbol not in wanted:
            continue
        rows: dict[date, float] = {}
        with open(file, encoding="utf-8", newline="") as fh:
            for line in fh:
                counts["rows"] += 1
                fields = line.split()
                try:
                    day, movement = date.fromisoformat(fields[0]), float(fields[1])
                except (IndexError, ValueError):
                    counts["skipped_bad_row"] += 1
                    continue
                if not np.isfinite(movement) or movement <= -1:
                    counts["skipped_bad_row"] += 1
                    continue
                if day in rows:
                    counts["skipped_duplicate_date"] += 1
                    continue
                rows[day] = movement
        if rows:
            out[symbol] = sorted(rows.items())
            counts["kept"] += len(rows)
    if report is not None:
        report.update(counts)
    return out


def daily_returns(prices: dict[str, Prices]) -> dict[str, list[tuple[date, float]]]:
    """symbol -> ``(day, adjusted-close return)`` for every symbol with two or more days."""
    return {symbol: p.returns() for symbol, p in prices.items() if len(p.dates) >= 2}
