"""The live feed of scored documents: small JSON cards for the dashboard.

A card carries the document's text (cut at ``CARD_TEXT_CHARS``), its live score and the
character offsets of its entity mentions inside that text. Pages render the same cards
server-side (``card_segments`` splits the text at the mentions, so the template escapes
each piece) and the browser renders new ones from the socket with ``textContent``: no
document text is ever parsed as HTML.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.models import Prefetch
from django.urls import reverse

from apps.sentiment.models import Document, Mention, Score

log = logging.getLogger(__name__)

LIVE_GROUP = "sentiment.live"  # every analyst's dashboard socket
CARD_TEXT_CHARS = 500
FEED_SIZE = 20  # cards on the overview page
PUSH_SIZE = 10  # newest cards pushed per scoring batch (a 256-document batch is not a flood)


def _documents(ids: Iterable[int] | None = None, *, limit: int) -> list[Document]:
    live_scores = Prefetch("scores", queryset=Score.objects.filter(live=True), to_attr="live_scores")
    mentions = Prefetch(
        "mentions", queryset=Mention.objects.select_related("entity").order_by("start"), to_attr="mention_list"
    )
    documents = Document.objects.select_related("source").prefetch_related(live_scores, mentions)
    if ids is not None:
        documents = documents.filter(pk__in=list(ids))
    else:
        documents = documents.filter(scores__live=True)
    return list(documents.order_by("-published_at", "-id")[:limit])


def document_card(document: Document) -> dict[str, Any]:
    """The JSON card of one document (its ``live_scores`` / ``mention_list`` prefetched or not)."""
    scores = getattr(document, "live_scores", None)
    score = scores[0] if scores else document.scores.filter(live=True).first()
    mention_rows = getattr(document, "mention_list", None)
    if mention_rows is None:
        mention_rows = list(document.mentions.select_related("entity").order_by("start"))
    text = document.text[:CARD_TEXT_CHARS]
    mentions, taken = [], 0
    for m in mention_rows:  # non-overlapping, inside the cut text
        if m.start >= taken and m.end <= len(text):
            mentions.append({"symbol": m.entity.symbol, "start": m.start, "end": m.end})
            taken = m.end
    return {
        "id": document.pk,
        "title": document.title,
        "text": text,
        "truncated": len(document.text) > CARD_TEXT_CHARS,
        "url": document.url,
        "source": document.source.name,
        "published_at": document.published_at.isoformat(),
        "when": document.published_at.strftime("%Y-%m-%d %H:%M"),
        "label": score.label if score else None,
        "value": round(score.value, 4) if score else None,
        "abstained": score.abstained if score else False,
        "model_version": score.model_version if score else None,
        "mentions": mentions,
        "page": reverse("sentiment:document", args=[document.pk]),
        "entity_pages": {m["symbol"]: reverse("sentiment:entity", args=[m["symbol"]]) for m in mentions},
    }


def card_segments(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's text as pieces: ``{"text", "symbol"}`` where a mention is, else ``{"text"}``."""
    text, at, out = card["text"], 0, []
    for m in card["mentions"]:
        if m["start"] > at:
            out.append({"text": text[at : m["start"]]})
        out.append({"text": text[m["start"] : m["end"]], "symbol": m["symbol"]})
        at = m["end"]
    if at < len(text):
        out.append({"text": text[at:]})
    return out


def live_feed_recent(limit: int = FEED_SIZE) -> list[dict[str, Any]]:
    """The newest scored documents as cards (the overview page's first render)."""
    return [document_card(d) for d in _documents(limit=limit)]


def cards_for(ids: Iterable[int], limit: int = PUSH_SIZE) -> list[dict[str, Any]]:
    return [document_card(d) for d in _documents(ids, limit=limit)]


def live_documents_publish(*, document_ids: list[int], start: datetime | None, end: datetime | None) -> None:
    """Pushes the newest documents of a scoring batch to the dashboards (best effort).

    With the document ids the scoring signal names, else the newest live-scored documents
    published in ``[start, end]``.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if document_ids:
            cards = cards_for(document_ids)
        elif start is not None and end is not None:
            ids = (
                Score.objects.filter(live=True, document__published_at__gte=start, document__published_at__lte=end)
                .order_by("-document__published_at")
                .values_list("document_id", flat=True)[:PUSH_SIZE]
            )
            cards = cards_for(list(ids))
        else:
            return
        if cards:
            async_to_sync(layer.group_send)(LIVE_GROUP, {"type": "sentiment.documents", "documents": cards})
    except Exception:  # a dashboard that cannot be told must never fail the scoring
        log.warning("could not push scored documents to the live feed", exc_info=True)
