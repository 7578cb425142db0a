"""RSS/Atom sources: polled on their interval with conditional requests, backing off on failure.

The body is fetched by ``apps.core.outbound.fetch`` (address checks, timeouts, size cap) and
handed to feedparser as bytes, so feedparser never opens a connection itself. A poll sends
``If-None-Match`` / ``If-Modified-Since`` from the previous answer; a 304 is a success with
nothing new. A timeout, a refused or failed connection, an HTTP error or a body that is no
feed counts as a failure: ``consecutive_failures`` grows, ``last_error`` says what happened
and the next poll waits ``poll_interval_s * 2**failures`` (capped at ``BACKOFF_CAP_S``). The
first success puts the source back on its interval and marks it healthy.
"""

from __future__ import annotations

import calendar
import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from apps.core.outbound import OutboundError, fetch
from apps.sentiment.models import Source
from apps.sentiment.services.background import enqueue
from apps.sentiment.services.documents import IngestItem, IngestReport, documents_ingest

log = logging.getLogger(__name__)

BACKOFF_CAP_S = 6 * 3600  # a feed down for a day is still tried every 6 h
ERROR_MAX = 500  # characters of last_error (shown on the sources page)


class _Text(HTMLParser):
    """The text of an HTML fragment (feed summaries are HTML); scripts and styles dropped.

    Not trafilatura (the project's page-to-text tool): it extracts the main text of whole
    pages and returns nothing for a two-line summary."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(fragment: str) -> str:
    parser = _Text()
    parser.feed(fragment or "")
    parser.close()
    return " ".join("".join(parser.parts).split())


@dataclass
class PollResult:
    ok: bool
    status: int | None = None  # HTTP status, None when no answer came
    not_modified: bool = False
    entries: int = 0
    report: IngestReport | None = None
    error: str = ""


def _when(entry: Any, now: datetime) -> tuple[datetime | None, bool]:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None, False
    when = datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    if when > now:  # a publisher's clock or time zone is off: it cannot be news from the future
        return now, True
    return when, False


def entry_item(entry: Any, *, now: datetime) -> IngestItem:
    """An ingest item from a feedparser entry: guid as external id, title + summary as text."""
    title = html_text(entry.get("title", ""))
    summary = html_text(entry.get("summary", "") or entry.get("description", ""))
    text = title if not summary or summary == title else f"{title}. {summary}" if title else summary
    link = entry.get("link", "") or ""
    published, clamped = _when(entry, now)
    meta = {"feed_published_in_future": True} if clamped else {}
    return IngestItem(
        text=text,
        title=title,
        url=link if link.startswith(("http://", "https://")) else "",
        external_id=entry.get("id", "") or link,
        language=entry.get("language", "") or "",
        published_at=published,
        meta=meta,
    )


def feed_parse(body: bytes, *, url: str, content_type: str = "") -> Any:
    """feedparser on bytes already fetched (a stream: feedparser never fetches it itself)."""
    import feedparser

    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    return feedparser.parse(io.BytesIO(body), response_headers=headers)


def _failure(source: Source, error: str, *, status: int | None = None) -> PollResult:
    now = timezone.now()
    failures = source.consecutive_failures + 1
    delay = min(source.poll_interval_s * 2**failures, BACKOFF_CAP_S)
    Source.objects.filter(pk=source.pk).update(
        consecutive_failures=F("consecutive_failures") + 1,
        last_error=error[:ERROR_MAX],
        last_polled_at=now,
        next_poll_at=now + timedelta(seconds=max(delay, source.poll_interval_s)),
    )
    log.info("feed %s failed (%d in a row): %s", source.name, failures, error)
    source.refresh_from_db()
    return PollResult(ok=False, status=status, error=error)


def _success(source: Source, *, etag: str | None, last_modified: str | None) -> None:
    now = timezone.now()
    values: dict[str, Any] = {
        "consecutive_failures": 0,
        "last_error": "",
        "last_polled_at": now,
        "last_success_at": now,
        "next_poll_at": now + timedelta(seconds=source.poll_interval_s),
    }
    if etag is not None:
        values["etag"] = etag[:500]
    if last_modified is not None:
        values["last_modified"] = last_modified[:100]
    Source.objects.filter(pk=source.pk).update(**values)
    source.refresh_from_db()


def feed_poll(source: Source) -> PollResult:
    """Polls one feed source now (whatever its schedule)."""
    if source.kind != Source.Kind.FEED or not source.url:
        raise ValueError(f"source {source.name!r} is not a feed")
    headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
    if source.etag:
        headers["If-None-Match"] = source.etag
    if source.last_modified:
        headers["If-Modified-Since"] = source.last_modified
    try:
        response = fetch(
            source.url,
            headers=headers,
            timeout=settings.TRELLIS_SENTIMENT_FEED_TIMEOUT_S,
            max_bytes=settings.TRELLIS_SENTIMENT_FEED_MAX_BYTES,
        )
    except OutboundError as exc:
        return _failure(source, f"{exc.code}: {exc.message}")
    if response.status == 304:
        _success(source, etag=response.headers.get("etag"), last_modified=response.headers.get("last-modified"))
        return PollResult(ok=True, status=304, not_modified=True)
    if response.status != 200:
        return _failure(
            source, f"http_{response.status}: the feed answered HTTP {response.status}", status=response.status
        )
    parsed = feed_parse(response.body, url=response.url, content_type=response.headers.get("content-type", ""))
    if not parsed.entries and (parsed.bozo or not parsed.version):
        why = parsed.get("bozo_exception") or "no RSS or Atom document found"
        return _failure(source, f"malformed_feed: {str(why)[:300]}", status=200)
    now = timezone.now()
    items = [entry_item(entry, now=now) for entry in parsed.entries]
    report = documents_ingest(source, items)
    _success(source, etag=response.headers.get("etag", ""), last_modified=response.headers.get("last-modified", ""))
    return PollResult(ok=True, status=200, entries=len(items), report=report)


def sources_claim_due(*, now: datetime | None = None) -> list[int]:
    """Ids of enabled feeds due for a poll, each moved one interval on so a second beat does
    not queue it again before its poll task runs (the poll sets the real next time)."""
    now = now or timezone.now()
    due = Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now)
    claimed = []
    for source in Source.objects.filter(due, kind=Source.Kind.FEED, enabled=True).exclude(url=""):
        moved = Source.objects.filter(due, pk=source.pk).update(
            next_poll_at=now + timedelta(seconds=source.poll_interval_s)
        )
        if moved:
            claimed.append(source.pk)
    return claimed


def sources_poll_due() -> list[int]:
    """Queues a poll of every due feed; returns their ids."""
    claimed = sources_claim_due()
    for pk in claimed:
        enqueue("source_poll_task", pk)
    return claimed
