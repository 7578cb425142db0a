"""Objects the access matrix (tests/core/test_access_matrix.py) needs for the sentiment API."""

from __future__ import annotations

from datetime import UTC, datetime


def sentiment_access_objects() -> dict[str, int]:
    """A push source with one document, a feed, an entity (MTX) on a watchlist."""
    from apps.sentiment.models import Document, Entity, Source, Watchlist
    from apps.sentiment.services.documents import content_hash

    push = Source.objects.create(name="matrix push", kind=Source.Kind.PUSH)
    feed = Source.objects.create(name="matrix feed", kind=Source.Kind.FEED, url="https://feeds.example/rss")
    doc = Document.objects.create(
        source=push,
        text="Matrix Corp beats estimates",
        published_at=datetime(2025, 3, 3, tzinfo=UTC),
        content_hash=content_hash("matrix corp beats estimates"),
    )
    entity = Entity.objects.create(symbol="MTX", name="Matrix Corp")
    watchlist = Watchlist.objects.create(name="matrix")
    watchlist.entities.add(entity)
    return {"sent_push": push.pk, "sent_feed": feed.pk, "sent_doc": doc.pk, "sent_watchlist": watchlist.pk}
