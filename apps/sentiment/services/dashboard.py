"""Reads for the analyst dashboard: model status, watchlist tiles, entity charts, documents."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.db.models import QuerySet

from apps.mlops.models import ModelRole, ModelVersion
from apps.sentiment.models import Document, Entity, EntityScore, Price, Score, SeriesBucket, Watchlist
from apps.sentiment.services.feed_live import card_segments, cards_for
from apps.sentiment.services.series import latest_bucket_end, series_get

SPARK_DAYS = 14
SPARK_W, SPARK_H = 120, 28  # the SVG's viewBox, in its own units (CSS sizes it)
CHART_BUCKETS = {900: 192, 3600: 168, 86400: 120}  # 2 days of quarters, a week of hours, ~4 months


def model_status() -> dict[str, Any]:
    """The sentiment model the scores come from, and whether it is the chance-level default."""
    active = ModelVersion.objects.filter(role=ModelRole.SENTIMENT, status=ModelVersion.Status.ACTIVE).first()
    if active is None:
        return {"version": "default", "is_default": True, "weighted_f1": None, "pk": None}
    metrics = active.metrics or {}
    f1 = metrics.get("valid_weighted_f1", metrics.get("weighted_f1"))
    return {
        "version": active.version,
        "is_default": False,
        "pk": active.pk,
        "weighted_f1": f1 if isinstance(f1, int | float) else None,
        "f1_basis": "validation split" if "valid_weighted_f1" in metrics else "held-out split",
    }


def sparkline(values: list[float | None]) -> str:
    """SVG polyline points of means in [-1, 1] (gaps skipped), left to right."""
    if not values:
        return ""
    step = SPARK_W / max(1, len(values) - 1)
    return " ".join(f"{i * step:.1f},{(1 - v) / 2 * SPARK_H:.1f}" for i, v in enumerate(values) if v is not None)


def watchlist_tiles(entities: QuerySet[Entity] | list[Entity]) -> list[dict[str, Any]]:
    """Per entity: the last day with data (mean, volume) and a sparkline of the days before."""
    tiles = []
    for entity in entities:
        end = latest_bucket_end(entity, SeriesBucket.Width.DAY)
        tile: dict[str, Any] = {"entity": entity, "mean": None, "volume": 0, "day": None, "points": ""}
        if end is not None:
            series = series_get(
                entity=entity, width=86400, since=end - timedelta(days=SPARK_DAYS), until=end - timedelta(seconds=1)
            )
            buckets = series["buckets"]
            last = buckets[-1]
            tile.update(
                mean=last["mean"],
                volume=last["volume"],
                day=last["start"].date(),
                points=sparkline([b["mean"] for b in buckets]),
                trend="up" if (last["mean"] or 0) > 0.05 else "down" if (last["mean"] or 0) < -0.05 else "flat",
            )
        tiles.append(tile)
    # the most discussed first (their last day), then the quiet ones by symbol
    return sorted(tiles, key=lambda t: (t["day"] is None, -(t["day"].toordinal() if t["day"] else 0), -t["volume"]))


def overview_entities() -> list[Entity]:
    """Entities on any watchlist (every active entity when there is no watchlist)."""
    listed = Entity.objects.filter(active=True, watchlists__isnull=False).distinct()
    return list(listed if Watchlist.objects.exists() else Entity.objects.filter(active=True))


def _closes(entity: Entity, first: date, last: date) -> dict[date, float]:
    rows = Price.objects.filter(entity=entity, date__gte=first, date__lte=last).values_list("date", "close")
    return dict(rows)


def entity_chart(*, entity: Entity, width: int, basis: str) -> dict[str, Any]:
    """Chart data: mean sentiment and volume per bucket, with the daily close where known.

    The range ends at the newest bucket with data (a replay's data ends long before now).
    """
    end = latest_bucket_end(entity, width, basis)
    if end is None:
        return {"width": width, "basis": basis, "labels": [], "mean": [], "volume": [], "close": [], "has_price": False}
    since = end - timedelta(seconds=width * CHART_BUCKETS[width])
    first = (
        SeriesBucket.objects.filter(entity=entity, basis=basis, width_s=width, n__gt=0, start__gte=since)
        .order_by("start")
        .values_list("start", flat=True)
        .first()
    )
    since = max(since, first - timedelta(seconds=width)) if first else since  # no long empty lead-in
    series = series_get(entity=entity, width=width, since=since, until=end - timedelta(seconds=1), basis=basis)
    buckets = series["buckets"]
    closes = _closes(entity, buckets[0]["start"].date(), buckets[-1]["start"].date()) if buckets else {}
    fmt = "%Y-%m-%d" if width >= 86400 else "%m-%d %H:%M"
    return {
        "width": width,
        "basis": basis,
        "symbol": entity.symbol,
        "labels": [b["start"].strftime(fmt) for b in buckets],
        "mean": [None if b["mean"] is None else round(b["mean"], 4) for b in buckets],
        "volume": [b["volume"] for b in buckets],
        "close": [closes.get(b["start"].date()) for b in buckets],
        "has_price": bool(closes),
        "volume_total": series["volume"],
    }


def entity_documents(entity: Entity, limit: int = 20) -> list[dict[str, Any]]:
    ids = (
        EntityScore.objects.filter(entity=entity, live=True)
        .order_by("-published_at")
        .values_list("document_id", flat=True)[:limit]
    )
    return with_segments(cards_for(list(ids), limit=limit))


def with_segments(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**card, "segments": card_segments(card)} for card in cards]


def document_detail(document: Document) -> dict[str, Any]:
    """Scores per version, entity scores per version, and the text cut at its mentions."""
    scores = list(Score.objects.filter(document=document).order_by("-live", "-scored_at"))
    entity_scores = list(
        EntityScore.objects.filter(document=document)
        .select_related("entity")
        .order_by("entity__symbol", "-live", "model_version")
    )
    mentions = list(document.mentions.select_related("entity").order_by("start"))
    card = {"text": document.text, "mentions": []}
    taken = 0
    for m in mentions:
        if m.start >= taken:
            card["mentions"].append({"symbol": m.entity.symbol, "start": m.start, "end": m.end})
            taken = m.end
    return {
        "scores": scores,
        "entity_scores": entity_scores,
        "mentions": mentions,
        "segments": card_segments(card),
        "live": next((s for s in scores if s.live), None),
    }
