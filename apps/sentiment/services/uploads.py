"""CSV and JSON-lines uploads of documents.

Columns (CSV header) or fields (one JSON object a line): ``text`` (required), ``title``,
``published_at`` (ISO 8601, a date, or epoch seconds; without a zone it is UTC), ``url``,
``external_id``, ``language``; other columns are ignored and named in the report. A file that
cannot be read as a whole (too big, no ``text`` column, empty) is refused and nothing is
stored. Otherwise every bad line is reported by its number, with the reason, including lines
that are not UTF-8, and the other lines are ingested.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_date, parse_datetime

from apps.sentiment.models import Source
from apps.sentiment.services.documents import IngestItem, IngestReport, documents_ingest, source_system

COLUMNS = ("text", "title", "published_at", "url", "external_id", "language")
CHUNK = 2000  # items per ingest transaction: a 50k-line file commits in steps, memory stays flat
MAX_ROWS = 200_000
REPORT_MAX = 1000  # line errors listed; the count covers them all
_SURROGATE = re.compile("[\udc80-\udcff]")


class UploadRejected(ValueError):
    """The file as a whole cannot be read; nothing was stored."""


@dataclass
class UploadReport:
    source_id: int
    rows: int = 0
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    line_errors: list[dict[str, Any]] = field(default_factory=list)  # {"line": n, "error": "..."}
    ignored_columns: list[str] = field(default_factory=list)
    document_ids: list[int] = field(default_factory=list)

    def error(self, line: int, message: str) -> None:
        self.rejected += 1
        if len(self.line_errors) < REPORT_MAX:
            self.line_errors.append({"line": line, "error": message})


def _epoch(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"published_at: {seconds:g} seconds since 1970 is out of range") from exc


def parse_when(value: Any) -> datetime | None:
    """ISO 8601 time or date, or epoch seconds; None for blank; ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch(float(value))
    raw = str(value).strip()
    if re.fullmatch(r"\d{9,11}(\.\d+)?", raw):
        return _epoch(float(raw))
    when = parse_datetime(raw)
    if when is None:
        day = parse_date(raw)
        if day is None:
            raise ValueError(f"published_at: not a date or time ({raw[:40]!r}); use ISO 8601")
        when = datetime.combine(day, time(0), tzinfo=UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _item(raw: dict[str, Any]) -> IngestItem:
    bad = [name for name, value in raw.items() if isinstance(value, str) and _SURROGATE.search(value)]
    if bad:
        byte = ord(_SURROGATE.search(raw[bad[0]]).group()) - 0xDC00  # type: ignore[union-attr]
        raise ValueError(f"not UTF-8: byte 0x{byte:02x} in {bad[0]}")
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text: required")
    for name in ("title", "url", "external_id", "language"):
        if raw.get(name) is not None and not isinstance(raw[name], str | int):
            raise ValueError(f"{name}: must be a string")
    return IngestItem(
        text=text,
        title=str(raw.get("title") or ""),
        url=str(raw.get("url") or ""),
        external_id=str(raw.get("external_id") or ""),
        language=str(raw.get("language") or ""),
        published_at=parse_when(raw.get("published_at")),
    )


def _csv_rows(text: str, report: UploadReport) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise UploadRejected(f"The CSV header cannot be read: {exc}. Nothing was imported.") from exc
    if not header:
        raise UploadRejected("The file is empty; nothing was imported.")
    header = [name.strip().lower() for name in header]
    if "text" not in header:
        raise UploadRejected(f"The header has no 'text' column (columns: {', '.join(COLUMNS)}); nothing was imported.")
    if _SURROGATE.search(",".join(header)):
        raise UploadRejected("The header is not UTF-8 text; nothing was imported.")
    report.ignored_columns = sorted({name for name in header if name not in COLUMNS})
    rows: list[tuple[int, dict[str, Any]]] = []
    while True:
        line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            report.error(line, f"broken CSV: {exc}")
            if reader.line_num < line:  # nothing consumed: stop rather than loop
                break
            continue
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            report.error(line, f"{len(record)} columns, the header has {len(header)}")
            continue
        rows.append((line, {k: v for k, v in zip(header, record, strict=True) if k in COLUMNS}))
    return rows


def _jsonl_rows(text: str, report: UploadReport) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    for line, raw_line in enumerate(text.split("\n"), start=1):
        if not raw_line.strip():
            continue
        if _SURROGATE.search(raw_line):
            byte = ord(_SURROGATE.search(raw_line).group()) - 0xDC00  # type: ignore[union-attr]
            report.error(line, f"not UTF-8: byte 0x{byte:02x}")
            continue
        try:
            raw = json.loads(raw_line)
        except ValueError as exc:
            report.error(line, f"not valid JSON ({getattr(exc, 'msg', exc)})")
            continue
        if not isinstance(raw, dict):
            report.error(line, "not a JSON object")
            continue
        ignored = set(raw) - set(COLUMNS)
        report.ignored_columns = sorted(set(report.ignored_columns) | ignored)
        rows.append((line, {k: v for k, v in raw.items() if k in COLUMNS}))
    return rows


def upload_format(filename: str, file_format: str | None) -> str:
    if file_format:
        return file_format
    return "jsonl" if filename.lower().endswith((".jsonl", ".ndjson", ".json")) else "csv"


def documents_upload(
    *, data: bytes, filename: str = "", file_format: str | None = None, source: Source | None = None
) -> UploadReport:
    """Ingests an uploaded file into ``source`` (default: the "Uploads" source).

    Raises:
        UploadRejected: too big, unreadable as a whole, or no ``text`` column.
    """
    limit = settings.TRELLIS_SENTIMENT_MAX_UPLOAD_BYTES
    if len(data) > limit:
        raise UploadRejected(f"The file is {len(data):,} bytes; the limit is {limit:,}. Split it.")
    source = source or source_system(Source.Kind.UPLOAD)
    report = UploadReport(source_id=source.pk)
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    rows = _jsonl_rows(text, report) if upload_format(filename, file_format) == "jsonl" else _csv_rows(text, report)
    if not rows and not report.rejected:
        raise UploadRejected("The file has no rows; nothing was imported.")
    if len(rows) > MAX_ROWS:
        raise UploadRejected(f"More than {MAX_ROWS:,} rows in one file; split it.")
    report.rows = len(rows) + report.rejected
    items: list[tuple[int, IngestItem]] = []
    for line, raw in rows:
        try:
            items.append((line, _item(raw)))
        except ValueError as exc:
            report.error(line, str(exc))
    for first in range(0, len(items), CHUNK):
        chunk = items[first : first + CHUNK]
        ingested: IngestReport = documents_ingest(source, [item for _, item in chunk])
        report.created += ingested.created
        report.duplicates += ingested.duplicates
        report.document_ids += ingested.document_ids
        for rejected in ingested.rejected:
            report.error(chunk[rejected["index"]][0], rejected["error"])
    report.line_errors.sort(key=lambda e: e["line"])
    return report
