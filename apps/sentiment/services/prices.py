"""Daily prices of watched entities: from StockNet's price files or a CSV upload.

Prices are upserted by (entity, date): importing a file twice, or a corrected one, leaves one
row per day with the latest values. Symbols that are not entities are reported, not stored.
CSV columns: ``symbol,date,close`` required, ``open,adj_close,volume`` optional.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from apps.sentiment.models import Entity, Price

REQUIRED = ("symbol", "date", "close")
OPTIONAL = ("open", "adj_close", "volume")
WRITE_BATCH = 1000
REPORT_MAX = 1000


class PricesRejected(ValueError):
    """The file as a whole cannot be read; nothing was stored."""


@dataclass
class PriceImportReport:
    stored: int = 0
    symbols: list[str] = field(default_factory=list)
    unknown_symbols: list[str] = field(default_factory=list)
    rejected: int = 0
    line_errors: list[dict[str, Any]] = field(default_factory=list)

    def error(self, line: int, message: str) -> None:
        self.rejected += 1
        if len(self.line_errors) < REPORT_MAX:
            self.line_errors.append({"line": line, "error": message})


def _upsert(rows: list[Price]) -> int:
    for first in range(0, len(rows), WRITE_BATCH):
        Price.objects.bulk_create(
            rows[first : first + WRITE_BATCH],
            update_conflicts=True,
            unique_fields=["entity", "date"],
            update_fields=["open", "close", "adj_close", "volume"],
        )
    return len(rows)


def prices_import_stocknet(path: Path | str, *, symbols: list[str] | None = None) -> PriceImportReport:
    """Imports ``price_raw/<SYMBOL>.csv`` of the StockNet folder for entities on the watchlist."""
    from ml.sentiment.stocknet import read_prices

    entities = {e.symbol: e for e in Entity.objects.all()}
    wanted = [s.upper() for s in symbols] if symbols is not None else sorted(entities)
    counts: Counter[str] = Counter()
    found = read_prices(path, symbols=wanted, report=counts)
    report = PriceImportReport(unknown_symbols=sorted(set(wanted) - set(entities)))
    rows = []
    for symbol, prices in sorted(found.items()):
        entity = entities.get(symbol)
        if entity is None:
            continue
        report.symbols.append(symbol)
        for i, day in enumerate(prices.dates):
            rows.append(
                Price(
                    entity=entity,
                    date=day,
                    open=float(prices.open[i]),
                    close=float(prices.close[i]),
                    adj_close=float(prices.adj_close[i]),
                )
            )
    report.stored = _upsert(rows)
    report.rejected = counts.get("skipped_bad_row", 0)
    return report


def _number(row: dict[str, str], name: str, *, required: bool = False) -> float | None:
    raw = (row.get(name) or "").strip()
    if not raw:
        if required:
            raise ValueError(f"{name}: required")
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: not a number ({raw[:20]!r})") from exc
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: must be a finite number >= 0")
    return value


def prices_import_csv(data: bytes) -> PriceImportReport:
    """Imports a ``symbol,date,open,close,adj_close,volume`` CSV; bad lines reported by number."""
    limit = settings.TRELLIS_SENTIMENT_MAX_UPLOAD_BYTES
    if len(data) > limit:
        raise PricesRejected(f"The file is {len(data):,} bytes; the limit is {limit:,}.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PricesRejected(f"The file is not UTF-8 text (line {line}); nothing was imported.") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise PricesRejected(
            f"The header lacks {', '.join(missing)} (columns: symbol,date,open,close,adj_close,"
            "volume); nothing was imported."
        )
    reader.fieldnames = header
    entities = {e.symbol: e for e in Entity.objects.all()}
    report = PriceImportReport()
    rows: dict[tuple[int, date], Price] = {}
    unknown: set[str] = set()
    try:
        for row in reader:
            line = reader.line_num
            symbol = (row.get("symbol") or "").strip().lstrip("$").upper()
            entity = entities.get(symbol)
            if entity is None:
                unknown.add(symbol)
                report.error(line, f"symbol: {symbol or '(blank)'} is not an entity on the watchlist")
                continue
            raw_day = (row.get("date") or "").strip()
            try:
                day = date.fromisoformat(raw_day)
            except ValueError:
                report.error(line, f"date: not YYYY-MM-DD ({raw_day[:20]!r})")
                continue
            try:
                values = {name: _number(row, name, required=name == "close") for name in ("close", *OPTIONAL)}
            except ValueError as exc:
                report.error(line, str(exc))
                continue
            rows[(entity.pk, day)] = Price(entity=entity, date=day, **values)
    except csv.Error as exc:
        raise PricesRejected(f"The CSV is broken near line {reader.line_num}: {exc}; nothing was imported.") from exc
    report.stored = _upsert(list(rows.values()))
    report.symbols = sorted({p.entity.symbol for p in rows.values()})
    report.unknown_symbols = sorted(unknown - {""})
    return report


def price_list(entity: Entity, *, since: date | None = None, until: date | None = None) -> QuerySet[Price]:
    prices = Price.objects.filter(entity=entity)
    if since:
        prices = prices.filter(date__gte=since)
    if until:
        prices = prices.filter(date__lte=until)
    return prices.order_by("date")
