"""The catalogue: item create/update/delete and imports from CSV or JSON lines.

An import is checked as a whole when it is uploaded: a file that is not UTF-8, or whose CSV
structure is broken, is refused with the reason and nothing is stored. Rows with a bad
value are reported by line number and left out; the rest is written by a task in batches,
with the progress on the import's row (the import page polls it).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from apps.recommend.models import KEY_PATTERN, CatalogueImport, Item
from apps.recommend.services.background import enqueue

FIELDS = ("external_id", "title", "description", "category", "price", "available", "attributes")
TEXT_FIELDS = ("title", "description", "category")  # a change here means a new embedding
REQUIRED = ("external_id", "title")
WRITE_BATCH = 500  # rows per bulk write and per progress update
REPORT_MAX = 1000  # line errors kept on the import; the count covers them all
MAX_ROWS = 500_000
TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "y", "t"}, {"0", "false", "no", "n", "f"}
LIMITS = {"title": 300, "description": 20_000, "category": 100}
_KEY = re.compile(KEY_PATTERN)


class ImportRejected(ValueError):
    """The file as a whole cannot be read; nothing was stored."""


@dataclass
class ParsedFile:
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (line, clean values)
    errors: list[dict[str, Any]] = field(default_factory=list)  # {"line": n, "error": "..."}


def item_values(raw: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Clean item fields from one row or request body; ValidationError names the bad field."""
    unknown = set(raw) - set(FIELDS)
    if unknown:
        raise ValidationError(f"unknown fields: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name in REQUIRED:
        if not partial and not str(raw.get(name) or "").strip():
            raise ValidationError(f"{name}: required")
    if "external_id" in raw:
        key = str(raw["external_id"] or "").strip()
        if not _KEY.match(key):
            raise ValidationError("external_id: use 1-100 letters, digits, '.', '_', ':' or '-'")
        out["external_id"] = key
    for name, limit in LIMITS.items():
        if name in raw:
            value = "" if raw[name] is None else str(raw[name]).strip()
            if len(value) > limit:
                raise ValidationError(f"{name}: longer than {limit} characters")
            if name == "title" and not value:
                raise ValidationError("title: required")
            out[name] = value
    if "price" in raw:
        out["price"] = _price(raw["price"])
    if "available" in raw:
        out["available"] = _boolean(raw["available"])
    if "attributes" in raw:
        out["attributes"] = _attributes(raw["attributes"])
    return out


def _price(value: Any) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValidationError("price: not a number")
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValidationError(f"price: not a number ({str(value)[:20]!r})") from exc
    if not price.is_finite() or price < 0 or price >= Decimal("1e10"):
        raise ValidationError("price: must be between 0 and 9,999,999,999")
    return price.quantize(Decimal("0.01"))


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValidationError(f"available: not true/false ({str(value)[:20]!r})")


def _attributes(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValidationError("attributes: not valid JSON") from exc
    if not isinstance(value, dict):
        raise ValidationError("attributes: must be a JSON object")
    return value


# --- parsing a whole file


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportRejected(
            f"The file is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} cannot be decoded. "
            "Save it as UTF-8 and upload it again; nothing was imported."
        ) from exc


def _add(parsed: ParsedFile, line: int, raw: dict[str, Any], seen: dict[str, int]) -> None:
    try:
        values = item_values(raw)
    except ValidationError as exc:
        parsed.errors.append({"line": line, "error": "; ".join(exc.messages)})
        return
    first = seen.get(values["external_id"])
    if first is not None:
        parsed.errors.append({"line": line, "error": f"external_id {values['external_id']} repeats line {first}"})
        return
    seen[values["external_id"]] = line
    parsed.rows.append((line, values))
    if len(parsed.rows) > MAX_ROWS:
        raise ImportRejected(f"More than {MAX_ROWS} items in one file; split it.")


def _parse_csv(text: str) -> ParsedFile:
    parsed, seen = ParsedFile(), {}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise ImportRejected("The file is empty; nothing was imported.")
        header = [name.strip().lower() for name in header]
        missing = [name for name in REQUIRED if name not in header]
        unknown = [name for name in header if name not in FIELDS]
        if missing or unknown or len(set(header)) != len(header):
            raise ImportRejected(
                f"The header must name the columns once each, from {', '.join(FIELDS)} "
                f"({', '.join(REQUIRED)} required); "
                + (f"missing {', '.join(missing)}" if missing else f"not understood: {', '.join(unknown) or 'repeats'}")
                + ". Nothing was imported."
            )
        line = reader.line_num + 1
        for record in reader:
            if any(cell.strip() for cell in record):
                if len(record) != len(header):
                    parsed.errors.append(
                        {"line": line, "error": f"{len(record)} columns, the header has {len(header)}"})
                else:
                    _add(parsed, line, dict(zip(header, record, strict=True)), seen)
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ImportRejected(
            f"The CSV is broken near line {reader.line_num}: {exc}. Nothing was imported."
        ) from exc
    return parsed


def _parse_jsonl(text: str) -> ParsedFile:
    parsed, seen = ParsedFile(), {}
    for line, raw_line in enumerate(text.splitlines(), start=1):
        if not raw_line.strip():
            continue
        try:
            raw = json.loads(raw_line)
        except ValueError as exc:
            parsed.errors.append({"line": line, "error": f"not valid JSON ({exc.msg})"})
            continue
        if not isinstance(raw, dict):
            parsed.errors.append({"line": line, "error": "not a JSON object"})
            continue
        _add(parsed, line, raw, seen)
    if not parsed.rows and not parsed.errors:
        raise ImportRejected("The file is empty; nothing was imported.")
    return parsed


def catalogue_file_parse(data: bytes, file_format: str) -> ParsedFile:
    text = _decode(data)
    if "\x00" in text:
        raise ImportRejected("The file holds NUL bytes: it is binary, not CSV or JSON lines. Nothing was imported.")
    return _parse_csv(text) if file_format == CatalogueImport.Format.CSV else _parse_jsonl(text)


def format_of(filename: str, requested: str | None) -> str:
    if requested:
        return requested
    return CatalogueImport.Format.JSONL if filename.lower().endswith((".jsonl", ".json", ".ndjson")) \
        else CatalogueImport.Format.CSV


def catalogue_import_create(*, uploaded_file: UploadedFile, file_format: str | None, user: Any) -> CatalogueImport:
    """Checks the whole file now (ImportRejected: nothing stored) and queues the writing."""
    data = uploaded_file.read()
    file_format = format_of(uploaded_file.name or "", file_format)
    parsed = catalogue_file_parse(data, file_format)
    uploaded_file.seek(0)
    run = CatalogueImport.objects.create(
        file=uploaded_file, filename=(uploaded_file.name or "")[:255], format=file_format,
        total_rows=len(parsed.rows), rejected=len(parsed.errors), line_errors=parsed.errors[:REPORT_MAX],
        created_by=user if getattr(user, "pk", None) else None,
    )
    enqueue("catalogue_import_run_task", run.pk)
    return run


def catalogue_import_run(import_id: int) -> CatalogueImport:
    """Writes the rows of an import in batches; safe to run again (rows are upserts)."""
    run = CatalogueImport.objects.get(pk=import_id)
    if run.is_finished:
        return run
    CatalogueImport.objects.filter(pk=run.pk).update(status=CatalogueImport.Status.RUNNING)
    try:
        with run.file.open("rb") as handle:
            parsed = catalogue_file_parse(handle.read(), run.format)
        created = updated = 0
        touched: list[int] = []
        for start in range(0, len(parsed.rows), WRITE_BATCH):
            batch = [values for _, values in parsed.rows[start:start + WRITE_BATCH]]
            made, changed, ids = _write_batch(batch)
            created, updated = created + made, updated + changed
            touched += ids
            done = min(len(parsed.rows), start + WRITE_BATCH)
            CatalogueImport.objects.filter(pk=run.pk).update(
                created=created, updated=updated, progress=round(done / max(1, len(parsed.rows)), 4))
    except Exception as exc:
        CatalogueImport.objects.filter(pk=run.pk).update(
            status=CatalogueImport.Status.FAILED, error=str(exc)[:500], finished_at=timezone.now())
        raise
    CatalogueImport.objects.filter(pk=run.pk).update(
        status=CatalogueImport.Status.SUCCEEDED, progress=1.0, finished_at=timezone.now())
    if touched:
        enqueue("item_index_update_task", touched)
    run.refresh_from_db()
    return run


@transaction.atomic
def _write_batch(rows: list[dict[str, Any]]) -> tuple[int, int, list[int]]:
    existing = {item.external_id: item for item in
                Item.objects.select_for_update().filter(external_id__in=[r["external_id"] for r in rows])}
    new, changed, reembed = [], [], []
    now = timezone.now()
    for values in rows:
        item = existing.get(values["external_id"])
        if item is None:
            new.append(Item(**values))
            continue
        if _apply(item, values):
            item.updated_at = now
            changed.append(item)
            if item.embedding is None:
                reembed.append(item.pk)
    Item.objects.bulk_create(new, batch_size=WRITE_BATCH)
    fields = [f for f in FIELDS if f != "external_id"] + ["embedding", "embedded_at", "updated_at"]
    Item.objects.bulk_update(changed, fields, batch_size=WRITE_BATCH)
    new_ids = list(Item.objects.filter(external_id__in=[i.external_id for i in new]).values_list("pk", flat=True))
    return len(new), len(changed), new_ids + reembed


def _apply(item: Item, values: dict[str, Any]) -> bool:
    """Copies ``values`` onto ``item``; True if anything changed (a text change drops the vector)."""
    changed = False
    for name, value in values.items():
        if getattr(item, name) != value:
            setattr(item, name, value)
            changed = True
            if name in TEXT_FIELDS:
                item.embedding, item.embedded_at = None, None
    return changed


# --- single items (API, admin)


def item_create(*, values: dict[str, Any]) -> Item:
    clean = item_values(values)
    if Item.objects.filter(external_id=clean["external_id"]).exists():
        raise ValidationError(f"external_id {clean['external_id']} already exists")
    return Item.objects.create(**clean)  # signals.py queues its embedding and index entry


@transaction.atomic
def item_update(*, item: Item, values: dict[str, Any]) -> Item:
    clean = item_values(values, partial=True)
    clean.pop("external_id", None)  # the id names the item; it never changes
    item = Item.objects.select_for_update().get(pk=item.pk)
    if _apply(item, clean):
        item.save()  # signals.py re-embeds it when its text changed
    return item


def item_delete(*, item: Item) -> None:
    item.delete()  # its events and impressions go with it; signals.py removes it from the index
