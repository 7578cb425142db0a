"""Reads for the dashboard: catalogue pages, a customer's history, the state of the models."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from apps.recommend.models import Event, Impression, Item
from apps.recommend.services.engine import engine_get
from apps.recommend.services.index import item_index_get

HISTORY_ROWS = 50


def item_list(*, q: str = "", category: str = "") -> QuerySet[Item]:
    items = Item.objects.defer("embedding", "description", "attributes")
    if q:
        items = items.filter(Q(title__icontains=q) | Q(external_id__icontains=q))
    if category:
        items = items.filter(category=category)
    return items


def category_list() -> list[str]:
    return list(Item.objects.exclude(category="").values_list("category", flat=True).distinct().order_by("category"))


def customer_history(user_key: str) -> QuerySet[Event]:
    return Event.objects.filter(user_key=user_key).select_related("item").defer("item__embedding")[:HISTORY_ROWS]


def models_status() -> dict[str, Any]:
    """Catalogue and event counts, the loaded index and the current fit (for the dashboard)."""
    index = item_index_get()
    fitted = engine_get()
    return {
        "items": Item.objects.count(),
        "embedded": Item.objects.exclude(embedding__isnull=True).count(),
        "events": Event.objects.count(),
        "impressions": Impression.objects.count(),
        "index": {"kind": index.kind, "count": len(index)} if index is not None else None,
        "fitted": {"name": fitted.name, **fitted.manifest, "members": sorted(fitted.members)} if fitted else None,
    }
