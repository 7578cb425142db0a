"""Feeds against a local HTTP server on 127.0.0.1: conditional requests (ETag -> 304), a broken
feed, an HTTP error and a timeout back off and mark the source unhealthy; success resets."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from apps.sentiment.models import Document, Source
from apps.sentiment.services.feeds import BACKOFF_CAP_S, entry_item, feed_parse, feed_poll, sources_poll_due

pytestmark = pytest.mark.django_db

ITEM = """<item><title>{title}</title><guid>{guid}</guid><link>https://news.example/{guid}</link>
<description>&lt;p&gt;{summary} &lt;b&gt;today&lt;/b&gt;&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;</description>
<pubDate>Mon, 03 Mar 2025 09:{minute:02d}:00 GMT</pubDate></item>"""


def rss(*items: tuple[str, str, str, int]) -> bytes:
    body = "".join(ITEM.format(guid=g, title=t, summary=s, minute=m) for g, t, s, m in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>{body}</channel></rss>').encode()


class FeedState:
    def __init__(self) -> None:
        self.etag = '"v1"'
        self.body = rss(
            ("g1", "Apple beats estimates", "Record iPhone sales", 1),
            ("g2", "Tesla misses deliveries", "Shares fall", 2),
        )
        self.conditional: list[str | None] = []  # If-None-Match of each request to /rss
        self.release = threading.Event()


class Handler(BaseHTTPRequestHandler):
    state: FeedState

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet."""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/rss":
            sent = self.headers.get("If-None-Match")
            self.state.conditional.append(sent)
            if sent == self.state.etag:
                self._send(304, headers={"ETag": self.state.etag})
            else:
                self._send(200, self.state.body, {"Content-Type": "application/rss+xml", "ETag": self.state.etag})
        elif self.path == "/broken":
            self._send(200, b"<html><body>We moved! This is no feed at all.", {"Content-Type": "text/html"})
        elif self.path == "/error":
            self._send(500, b"oops")
        elif self.path == "/slow":
            self.state.release.wait(5)
            self._send(200, rss(("late", "Too late", "", 3)))
        else:
            self._send(404)


@contextlib.contextmanager
def serve() -> Iterator[tuple[str, FeedState]]:
    state = FeedState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (Handler,), {"state": state}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def feed_server(settings) -> Iterator[tuple[str, FeedState]]:
    settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    settings.TRELLIS_SENTIMENT_FEED_TIMEOUT_S = 0.5
    with serve() as served:
        yield served


def feed(url: str, **extra: Any) -> Source:
    values = {"name": f"feed {url}", "kind": Source.Kind.FEED, "url": url, "poll_interval_s": 300, **extra}
    return Source.objects.create(**values)


def test_a_feed_is_ingested_and_an_unchanged_one_answers_304_with_nothing_new(feed_server, watchlist):
    base, state = feed_server
    source = feed(base + "/rss")

    first = feed_poll(source)
    second = feed_poll(source)

    assert (first.ok, first.status, first.report.created) == (True, 200, 2)
    assert (second.ok, second.status, second.not_modified) == (True, 304, True)
    assert state.conditional == [None, '"v1"']  # the second request was conditional
    assert Document.objects.count() == 2
    doc = Document.objects.get(url="https://news.example/g1")
    assert doc.external_id == base + "/g1"  # the guid (feedparser resolves it against the feed's URL)
    assert doc.text == "Apple beats estimates. Record iPhone sales today"  # HTML and the script dropped
    assert (doc.url, doc.published_at.isoformat()) == ("https://news.example/g1", "2025-03-03T09:01:00+00:00")
    assert doc.scores.get().label == "positive"
    source.refresh_from_db()
    assert source.healthy and source.etag == '"v1"' and source.documents_ingested == 2
    assert source.next_poll_at == pytest.approx(
        source.last_polled_at + timedelta(seconds=300), abs=timedelta(seconds=1)
    )


def test_a_changed_feed_adds_only_its_new_entries(feed_server, watchlist):
    base, state = feed_server
    source = feed(base + "/rss")
    feed_poll(source)
    state.etag = '"v2"'
    state.body = rss(
        ("g3", "Microsoft upgraded", "Analysts bullish", 4), ("g1", "Apple beats estimates", "Record iPhone sales", 1)
    )

    result = feed_poll(source)

    assert (result.report.created, result.report.duplicates) == (1, 1)
    assert Document.objects.count() == 3


@pytest.mark.parametrize(
    ("path", "code"), [("/broken", "malformed_feed"), ("/error", "http_500"), ("/slow", "timeout")]
)
def test_a_failing_feed_backs_off_is_unhealthy_and_recovers(feed_server, path, code):
    base, state = feed_server
    source = feed(base + path)

    first = feed_poll(source)
    second = feed_poll(source)

    assert not first.ok and first.error.startswith(code), first.error
    source.refresh_from_db()
    assert not source.healthy and source.consecutive_failures == 2
    assert source.last_error.startswith(code)
    assert source.next_poll_at == pytest.approx(
        source.last_polled_at + timedelta(seconds=300 * 4), abs=timedelta(seconds=1)
    )  # 2 ** failures
    assert not second.ok and Document.objects.count() == 0

    source.url = base + "/rss"
    source.save()
    assert feed_poll(source).ok
    source.refresh_from_db()
    assert source.healthy and source.last_error == "" and source.consecutive_failures == 0


def test_back_off_is_capped():
    source = Source.objects.create(
        name="down", kind=Source.Kind.FEED, url="http://127.0.0.1:9/feed", poll_interval_s=3600, consecutive_failures=10
    )

    feed_poll(source)  # no allow-list: refused before any connection

    assert source.last_error.startswith("address_refused")
    assert source.next_poll_at - source.last_polled_at == timedelta(seconds=BACKOFF_CAP_S)


def test_the_beat_polls_only_enabled_feeds_that_are_due(feed_server):
    base, _ = feed_server
    due = feed(base + "/rss")
    feed(base + "/error", enabled=False, name="off")
    feed(base + "/error", next_poll_at=timezone.now() + timedelta(minutes=5), name="later")
    Source.objects.create(name="pushes", kind=Source.Kind.PUSH)

    polled = sources_poll_due()

    assert polled == [due.pk]
    assert Document.objects.count() == 2
    assert sources_poll_due() == []  # it is not due again until its interval passed


def test_entries_without_date_or_guid_still_make_items():
    parsed = feed_parse(
        b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>x</title>
        <entry><title>Only a title</title><link href="https://a.example/1"/></entry></feed>""",
        url="https://a.example/feed",
    )
    now = timezone.now()

    item = entry_item(parsed.entries[0], now=now)

    assert (item.text, item.external_id, item.published_at) == ("Only a title", "https://a.example/1", None)
