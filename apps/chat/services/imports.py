"""Importing articles from files: Markdown, HTML, JSON and CSV.

- Markdown (``.md``, ``.markdown``): one file is one article; the title is the first heading
  (the file name without one), the rest is the body.
- HTML (``.html``, ``.htm``): the readable text is extracted with trafilatura (as Markdown);
  scripts, styles and every tag are gone, so no raw HTML from an import reaches a page (and
  the renderer escapes any that would).
- JSON: a list of ``{"title", "body", "tags", "published", "external_id"}`` objects.
- CSV: a header with ``title,body`` and optionally ``tags`` (separated by commas or
  semicolons), ``published`` (true/false/yes/no/1/0) and ``external_id``.

A file that is not UTF-8, empty, too large or malformed is reported (with its line where
there is one) and skipped; a bad row or item is reported and skipped; the rest is imported.
Imports are idempotent: an item with an ``external_id`` updates that article, one without
updates the article with the same title; an identical item changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import audit_record
from apps.chat.models import Article, KbImport
from apps.chat.services.articles import article_upsert
from apps.chat.services.background import index_updates_batched

REPORT_MAX = 500  # report entries kept per import (the counts cover everything)
EXTENSIONS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
    ".csv": "csv",
}
TRUE, FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n", ""}
ATX_TITLE = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
SETEXT_TITLE = re.compile(r"^(?P<title>[^\n]+)\n[ \t]{0,3}(=+|-+)[ \t]*$", re.MULTILINE)
EXTERNAL_ID_MAX = Article._meta.get_field("external_id").max_length


class ImportRejected(Exception):
    """The upload as a whole cannot be imported (no files, too many)."""


class FileProblem(Exception):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Parsed:
    """One item of a file: the values of an article, or why it was refused."""

    where: dict[str, int] = field(default_factory=dict)  # {"line": 7} or {"item": 3}
    values: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None
    error: str = ""


def file_format(filename: str) -> str | None:
    return EXTENSIONS.get(PurePath(filename).suffix.lower())


def file_decode(data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); the line of the first bad byte when it is not."""
    if not data.strip():
        raise FileProblem("the file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileProblem(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); save it as UTF-8", line
        ) from exc
    if "\x00" in text:
        raise FileProblem("the file holds NUL bytes: not a text file", text[: text.index("\x00")].count("\n") + 1)
    return text.replace("\r\n", "\n")


def _title_from_name(filename: str) -> str:
    return " ".join(re.split(r"[-_\s]+", PurePath(filename).stem)).strip() or filename


def parse_markdown(filename: str, text: str) -> list[Parsed]:
    atx, setext = ATX_TITLE.search(text), SETEXT_TITLE.search(text)
    first = min((m for m in (atx, setext) if m), key=lambda m: m.start(), default=None)
    if first is None:
        return [Parsed({"line": 1}, {"title": _title_from_name(filename), "body": text.strip()})]
    title = first.group(1) if first is atx else first.group("title")
    body = (text[: first.start()] + text[first.end() :]).strip()
    return [Parsed({"line": text[: first.start()].count("\n") + 1}, {"title": title.strip(), "body": body})]


def parse_html(filename: str, text: str) -> list[Parsed]:
    import trafilatura

    body = (
        trafilatura.extract(
            text,
            output_format="markdown",
            include_links=False,
            include_images=False,
            include_comments=False,
            include_tables=True,
            favor_recall=True,
        )
        or ""
    )
    if not body.strip():
        raise FileProblem("no readable text found in the HTML")
    metadata = trafilatura.extract_metadata(text)
    title = (metadata.title if metadata is not None else "") or _title_from_name(filename)
    return [Parsed({"line": 1}, {"title": title, "body": body.strip()})]


def _published(value: Any) -> bool | None:
    """True/False, None when absent; ``ValueError`` for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False if text else None
    raise ValueError(f"published: {str(value)[:20]!r} is not true/false")


def _external_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if len(text) > EXTERNAL_ID_MAX:
        raise ValueError(f"external_id: at most {EXTERNAL_ID_MAX} characters")
    return text or None


def _record(where: dict[str, int], row: dict[str, Any]) -> Parsed:
    try:
        values = {"title": row.get("title"), "body": row.get("body"), "tags": row.get("tags")}
        published = _published(row.get("published"))
        if published is not None:
            values["published"] = published
        return Parsed(where, values, _external_id(row.get("external_id")))
    except ValueError as exc:
        return Parsed(where, {"title": str(row.get("title") or "")}, error=str(exc))


def parse_json(filename: str, text: str) -> list[Parsed]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileProblem(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", exc.lineno) from exc
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        data = data["articles"]
    if not isinstance(data, list):
        raise FileProblem('expected a list of articles: [{"title": ..., "body": ...}, ...]')
    out = []
    for number, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            out.append(Parsed({"item": number}, error=f"expected an object, got {type(row).__name__}"))
        else:
            out.append(_record({"item": number}, row))
    return out


def parse_csv(filename: str, text: str) -> list[Parsed]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [(name or "").strip().lower() for name in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise FileProblem(f"not valid CSV: {exc}", 1) from exc
    missing = {"title", "body"} - set(header)
    if missing:
        raise FileProblem(f"the header needs the columns title and body (missing: {', '.join(sorted(missing))})", 1)
    reader.fieldnames = header
    out: list[Parsed] = []
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if None in row or any(value is None for value in row.values()):
                out.append(
                    Parsed(
                        {"line": line}, {"title": str(row.get("title") or "")}, error=f"expected {len(header)} fields"
                    )
                )
                continue
            out.append(_record({"line": line}, row))
    except csv.Error as exc:
        out.append(Parsed({"line": line + 1}, error=f"not valid CSV: {exc}; the rest of the file was skipped"))
    return out


PARSERS = {"markdown": parse_markdown, "html": parse_html, "json": parse_json, "csv": parse_csv}


def _file_items(name: str, data: bytes) -> tuple[str | None, list[Parsed]]:
    kind = file_format(name)
    if kind is None:
        return None, [Parsed(error=f"unknown file type; use one of {', '.join(sorted(EXTENSIONS))}")]
    if len(data) > settings.TRELLIS_KB_MAX_IMPORT_BYTES:
        return kind, [Parsed(error=f"larger than {settings.TRELLIS_KB_MAX_IMPORT_BYTES // 1024} KiB")]
    try:
        return kind, PARSERS[kind](name, file_decode(data))
    except FileProblem as exc:
        return kind, [Parsed({"line": exc.line} if exc.line else {}, error=str(exc))]


def kb_import_create(
    *, files: list[tuple[str, bytes]], publish: bool = False, user: Any = None, request: Any = None
) -> KbImport:
    """Imports ``files`` (name, content) and returns the run with its per-item report.

    ``publish`` applies to items that do not say themselves (Markdown and HTML files, rows
    without a ``published`` value). The passage index is updated by one task afterwards.

    Raises:
        ImportRejected: no files, or more than ``TRELLIS_KB_MAX_IMPORT_FILES``.
    """
    if not files:
        raise ImportRejected("Choose at least one file to import.")
    if len(files) > settings.TRELLIS_KB_MAX_IMPORT_FILES:
        raise ImportRejected(f"At most {settings.TRELLIS_KB_MAX_IMPORT_FILES} files per import.")
    run = KbImport(filenames=[PurePath(name).name[:255] for name, _ in files], publish=publish, created_by=user)
    counts = {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    report: list[dict[str, Any]] = []
    budget = settings.TRELLIS_KB_MAX_IMPORT_ITEMS
    with index_updates_batched():
        for name, data in files:
            filename = PurePath(name).name[:255]
            kind, items = _file_items(filename, data)
            for item in items:
                entry: dict[str, Any] = {"file": filename, **item.where, "title": str(item.values.get("title") or "")}
                error = item.error
                if not error and budget <= 0:
                    error = f"over the limit of {settings.TRELLIS_KB_MAX_IMPORT_ITEMS} articles per import"
                if not error:
                    budget -= 1
                    values = {"published": publish, **item.values}
                    try:
                        with transaction.atomic():
                            article, outcome = article_upsert(
                                values=values,
                                external_id=item.external_id,
                                user=user,
                                source_format=kind or "",
                                source_filename=filename,
                            )
                        entry.update(outcome=outcome, article_id=article.pk, title=article.title)
                    except ValidationError as exc:
                        error = " ".join(exc.messages)
                if error:
                    entry.update(outcome="rejected", error=error)
                counts[entry["outcome"]] += 1
                if len(report) < REPORT_MAX:
                    report.append(entry)
        run.report = report
        run.total = sum(counts.values())
        for name, value in counts.items():
            setattr(run, name, value)
        with transaction.atomic():
            run.save()
            audit_record(
                actor=user,
                action="kb_import.create",
                target=run,
                request=request,
                summary=f"{run.created} created, {run.updated} updated, {run.rejected} rejected",
                details={"files": run.filenames},
            )
    return run
