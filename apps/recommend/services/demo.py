"""Demo data: a slice of UCI Online Retail as catalogue, customers and purchases.

Products come from StockCode/Description (category: the description's last word, a rough
stand-in since the data set has none), customers from CustomerID, purchases as events with
the evaluation protocol's rules (cancellations, non-positive quantities and lines without a
customer dropped; ``ml.recommend.online_retail``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction

from apps.recommend.models import Event, EventKind, Item

DEMO_LINES = 60_000  # of 541,909: Dec 2010 - Jan 2011, ~2.5k products; ~36 s of CPU to load, embed and fit
BATCH = 2000


def category_of(title: str) -> str:
    words = [w for w in title.replace(",", " ").split() if w.isalpha()]
    return words[-1].title() if words else ""


def demo_load(path: Path, *, lines: int = DEMO_LINES) -> dict[str, Any]:
    """Imports the slice (idempotent: items by code, events by a stable id)."""
    from ml.recommend.online_retail import read_online_retail

    data = read_online_retail(path, limit=lines)
    codes = sorted(data.titles)
    existing = set(Item.objects.filter(external_id__in=codes).values_list("external_id", flat=True))
    with transaction.atomic():
        Item.objects.bulk_create([
            Item(external_id=code, title=data.titles[code][:300], category=category_of(data.titles[code]),
                 price=Decimal(str(data.prices[code])) if code in data.prices else None)
            for code in codes if code not in existing
        ], batch_size=BATCH)
    pk_of = dict(Item.objects.filter(external_id__in=codes).values_list("external_id", "pk"))
    events = [
        Event(event_id=f"or-{e.user}-{e.item}-{int(e.ts)}", user_key=e.user, item_id=pk_of[e.item],
              kind=EventKind.PURCHASE, ts=datetime.fromtimestamp(e.ts, tz=UTC))
        for e in data.interactions if e.item in pk_of
    ]
    for start in range(0, len(events), BATCH):
        Event.objects.bulk_create(events[start:start + BATCH], ignore_conflicts=True)
    return {"items": len(codes), "new_items": len(codes) - len(existing), "events": len(events),
            "customers": len({e.user for e in data.interactions}), "report": data.report}
