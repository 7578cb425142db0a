"""Reads for the API and the dashboard: documents with their scores and entities, sources."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from apps.sentiment.models import Document, EntityScore, Mention, Score, Source


def document_list(
    *,
    entity: str = "",
    label: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    source: int | None = None,
    q: str = "",
) -> QuerySet[Document]:
    """Newest first, each with its live score and its mentions' entities prefetched."""
    docs = Document.objects.select_related("source").prefetch_related(
        Prefetch("scores", queryset=Score.objects.filter(live=True)),
        Prefetch("mentions", queryset=Mention.objects.select_related("entity")),
    )
    if entity:
        docs = docs.filter(
            Exists(Mention.objects.filter(document=OuterRef("pk"), entity__symbol=entity.strip().lstrip("$").upper()))
        )
    if label:
        docs = docs.filter(Exists(Score.objects.filter(document=OuterRef("pk"), live=True, label=label)))
    if since:
        docs = docs.filter(published_at__gte=since)
    if until:
        docs = docs.filter(published_at__lt=until)
    if source:
        docs = docs.filter(source_id=source)
    if q:
        docs = docs.filter(Q(text__icontains=q) | Q(title__icontains=q))
    return docs


def document_get(pk: int) -> Document | None:
    """One document with every version's score, its mentions and entity scores."""
    return (
        Document.objects.select_related("source")
        .prefetch_related(
            "scores",
            Prefetch("mentions", queryset=Mention.objects.select_related("entity")),
            Prefetch(
                "entity_scores",
                queryset=EntityScore.objects.select_related("entity").order_by("entity__symbol", "model_version"),
            ),
        )
        .filter(pk=pk)
        .first()
    )


def source_list() -> QuerySet[Source]:
    return Source.objects.all()


def scoring_status() -> dict[str, Any]:
    """Documents, how many wait for their live score, and sources that are failing."""
    pending = Document.objects.filter(~Exists(Score.objects.filter(document=OuterRef("pk"), live=True))).count()
    return {
        "documents": Document.objects.count(),
        "pending": pending,
        "unhealthy_sources": Source.objects.filter(consecutive_failures__gt=0).count(),
    }
