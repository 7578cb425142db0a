"""Documents: normalised, hashed, deduplicated, bounded; ingested in bulk from any source.

Normalisation (``text_normalise``): Unicode NFKC (full-width letters, ligatures and
non-breaking spaces become their plain forms), control characters dropped (PostgreSQL
refuses NUL), every run of white space one space, stripped. The **content hash** is the
sha256 of the normalised text *case-folded*: the same headline in capitals, with other
spacing or sent by two sources is one document. What is stored is the normalised text with
its case (the model and the analyst read it as written).

A push is idempotent twice over: an item whose ``(source, external_id)`` was seen before is a
duplicate whatever its text, and so is any item whose hash is known. ``documents_ingest``
checks every item, reports each rejected one with its reason, writes the rest in one
transaction and queues scoring once that transaction commits.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.sentiment.models import Document, Source
from apps.sentiment.services.background import enqueue

log = logging.getLogger(__name__)

TITLE_MAX = Document._meta.get_field("title").max_length
URL_MAX = Document._meta.get_field("url").max_length
EXTERNAL_ID_MAX = Document._meta.get_field("external_id").max_length
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)  # older dates are a sender's bug (epoch 0, year 1), not news
FUTURE_SLACK = timedelta(minutes=5)  # senders' clocks drift; later than this is refused
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
# py3langid's normalised probability below which the language is left unknown: short
# tickers-only posts ("$AAPL $MSFT") get ~0.3 for whatever language wins.
LANGUAGE_MIN_CONFIDENCE = 0.5
_SPACE_RE = re.compile(r"\s+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")  # zero-width characters
_url = URLValidator(schemes=["http", "https"])


def text_normalise(text: str) -> str:
    """NFKC, control and zero-width characters dropped, white space collapsed, stripped."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE_RE.sub("", _CONTROL_RE.sub(" ", text))
    return _SPACE_RE.sub(" ", text).strip()


def content_hash(normalised: str) -> str:
    """sha256 (hex) of the case-folded normalised text: the deduplication key."""
    return hashlib.sha256(normalised.casefold().encode("utf-8")).hexdigest()


# --- language


_detector: Any = None
_detector_lock = threading.Lock()


def language_detect(text: str) -> str:
    """ISO 639-1 code by py3langid (4 MB, ~30 µs a headline), "" when unsure."""
    global _detector
    with _detector_lock:
        if _detector is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _detector = LanguageIdentifier.from_model_file(
                MODEL_FILE, norm_probs=True, min_confidence=LANGUAGE_MIN_CONFIDENCE
            )
    language, _confidence = _detector.classify(text)
    return "" if language == "und" else language


# --- items and reports


@dataclass
class IngestItem:
    """One document as a source delivers it (before checks)."""

    text: str
    title: str = ""
    url: str = ""
    external_id: str = ""
    language: str = ""
    published_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestReport:
    created: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"index", "external_id", "error"}
    document_ids: list[int] = field(default_factory=list)  # the created documents

    def merge(self, other: IngestReport, *, index_offset: int = 0) -> None:
        self.created += other.created
        self.duplicates += other.duplicates
        self.rejected += [{**r, "index": r["index"] + index_offset} for r in other.rejected]
        self.document_ids += other.document_ids


class ItemRejected(ValueError):
    """One item cannot be stored; the message says why and is shown to the sender."""


def item_clean(item: IngestItem, *, now: datetime) -> Document:
    """An unsaved Document from ``item`` (source not set); raises ItemRejected."""
    if not isinstance(item.text, str):
        raise ItemRejected("text: required")
    text = text_normalise(item.text)
    limit = settings.TRELLIS_SENTIMENT_MAX_DOCUMENT_CHARS
    if not text:
        raise ItemRejected("text: empty after removing white space")
    if len(text) > limit:
        raise ItemRejected(f"text: {len(text):,} characters; the limit is {limit:,}")
    title = text_normalise(item.title or "")
    if len(title) > TITLE_MAX:
        title = title[: TITLE_MAX - 1].rstrip() + "…"
    url = (item.url or "").strip()
    if url:
        if len(url) > URL_MAX:
            raise ItemRejected(f"url: longer than {URL_MAX} characters")
        try:
            _url(url)
        except ValidationError as exc:
            raise ItemRejected("url: not a valid http(s) URL") from exc
    external_id = text_normalise(item.external_id or "")
    if len(external_id) > EXTERNAL_ID_MAX:
        raise ItemRejected(f"external_id: longer than {EXTERNAL_ID_MAX} characters")
    language = (item.language or "").strip().lower().replace("_", "-")
    if language and not LANGUAGE_RE.match(language):
        raise ItemRejected("language: use an ISO 639 code such as 'en' or 'pt-br'")
    meta = dict(item.meta or {})
    published = item.published_at
    if published is None:
        published = now
        meta["published_at_defaulted"] = True  # the sender gave none: the time it arrived
    elif timezone.is_naive(published):
        published = published.replace(tzinfo=UTC)  # a time without zone is read as UTC
    if published < EARLIEST:
        raise ItemRejected(f"published_at: {published.isoformat()} is before 1900")
    if published > now + FUTURE_SLACK:
        raise ItemRejected(f"published_at: {published.isoformat()} is in the future")
    return Document(
        external_id=external_id,
        content_hash=content_hash(text),
        title=title,
        text=text,
        url=url,
        language=language or language_detect(text),
        published_at=published,
        meta=meta,
    )


def documents_ingest(source: Source, items: list[IngestItem], *, score: bool = True) -> IngestReport:
    """Checks and stores ``items`` for ``source`` in one transaction; queues scoring after commit.

    Rejected items are reported by their index in ``items``; duplicates (by ``(source,
    external_id)`` or by content hash, against the database and within the batch) change
    nothing. Returns the counts and the ids of the created documents.
    """
    report = IngestReport()
    now = timezone.now()
    candidates: list[tuple[int, Document]] = []
    for index, item in enumerate(items):
        try:
            candidates.append((index, item_clean(item, now=now)))
        except ItemRejected as exc:
            report.rejected.append(
                {"index": index, "external_id": str(item.external_id or "")[:EXTERNAL_ID_MAX], "error": str(exc)}
            )
    with transaction.atomic():
        fresh = _unseen(source, candidates, report)
        created = _insert(source, fresh, report)
        if created:
            Source.objects.filter(pk=source.pk).update(documents_ingested=F("documents_ingested") + len(created))
            if score:
                enqueue("documents_score_pending_task")
    report.created = len(created)
    report.document_ids = [doc.pk for doc in created]
    return report


def _unseen(source: Source, candidates: list[tuple[int, Document]], report: IngestReport) -> list[Document]:
    hashes = {doc.content_hash for _, doc in candidates}
    external_ids = {doc.external_id for _, doc in candidates if doc.external_id}
    known_hashes = set(Document.objects.filter(content_hash__in=hashes).values_list("content_hash", flat=True))
    known_ids = (
        set(Document.objects.filter(source=source, external_id__in=external_ids).values_list("external_id", flat=True))
        if external_ids
        else set()
    )
    fresh: list[Document] = []
    for _index, doc in candidates:
        if doc.content_hash in known_hashes or (doc.external_id and doc.external_id in known_ids):
            report.duplicates += 1
            continue
        known_hashes.add(doc.content_hash)
        if doc.external_id:
            known_ids.add(doc.external_id)
        doc.source = source
        fresh.append(doc)
    return fresh


def _insert(source: Source, fresh: list[Document], report: IngestReport) -> list[Document]:
    if not fresh:
        return []
    try:
        with transaction.atomic():  # a savepoint: a conflict undoes only this insert
            return Document.objects.bulk_create(fresh)
    except IntegrityError:
        # Another request stored some of the same texts or ids since we looked: one by one,
        # each in its own savepoint, and the ones that conflict are duplicates.
        log.info("concurrent ingest into %s: inserting %d documents one by one", source, len(fresh))
    created = []
    for doc in fresh:
        try:
            with transaction.atomic():
                doc.pk = None
                doc.save(force_insert=True)
            created.append(doc)
        except IntegrityError:
            report.duplicates += 1
    return created


# --- system sources


SYSTEM_SOURCES = {Source.Kind.UPLOAD: "Uploads", Source.Kind.REPLAY: "StockNet replay"}


def source_system(kind: str) -> Source:
    """The source that uploads (or replays) without a chosen source are filed under."""
    source, _ = Source.objects.get_or_create(name=SYSTEM_SOURCES[Source.Kind(kind)], defaults={"kind": kind})
    return source
