"""A small generated shop: kitchen and garden items, customers who buy within a category."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apps.recommend.models import Event, Item

KITCHEN = ["red ceramic mug", "blue ceramic mug", "ceramic teapot", "glass teapot", "wooden spoon set",
           "steel kitchen knife", "ceramic bowl"]
GARDEN = ["garden hose", "garden gloves", "watering can", "flower pot", "garden spade", "bird feeder"]
START = datetime(2025, 1, 1, tzinfo=UTC)


def shop(*, customers: int = 12) -> dict[str, Any]:
    """Items k0..k6 (Kitchen) and g0..g5 (Garden); customers c0.. buy 3 items of one category."""
    items = {}
    for prefix, names, category in (("k", KITCHEN, "Kitchen"), ("g", GARDEN, "Garden")):
        for n, name in enumerate(names):
            items[f"{prefix}{n}"] = Item.objects.create(external_id=f"{prefix}{n}", title=name.title(),
                                                        description=name, category=category, price=n + 1)
    events = []
    for c in range(customers):
        prefix, size = ("k", len(KITCHEN)) if c % 2 == 0 else ("g", len(GARDEN))
        for step in range(3):
            key = f"{prefix}{(c + step) % size}"
            events.append(Event(event_id=f"e-{c}-{step}", user_key=f"c{c}", item=items[key], kind="purchase",
                                ts=START + timedelta(days=c, hours=step)))
    Event.objects.bulk_create(events)
    return items


def fitted_shop(**kwargs: Any) -> dict[str, Any]:
    from apps.recommend.services.engine import recommenders_fit
    from apps.recommend.services.index import item_index_build

    items = shop(**kwargs)
    item_index_build()
    recommenders_fit()
    return items


def recommend_isolate(settings: Any, tmp_path: Any) -> None:
    """Index and fits under ``tmp_path``; nothing cached from another test (the access matrix uses it)."""
    from apps.recommend.services import abtests, engine, index, widget

    settings.TRELLIS_RECOMMEND_DIR = tmp_path / "recommend"
    abtests.serving_cache.reset()
    index.item_index_cache.reset()
    engine.engine_cache.reset()
    widget.widget_origins_reset()


def access_matrix_objects() -> dict[str, int]:
    """One item (rec-item), import, running A/B test, evaluation and widget key (the access matrix's)."""
    from django.core.files.base import ContentFile

    from apps.recommend.models import ABTest, CatalogueImport, EvaluationRun

    Item.objects.create(external_id="rec-item", title="Matrix mug", category="Kitchen")
    run = CatalogueImport(filename="items.csv", format="csv", status="succeeded")
    run.file.save("items.csv", ContentFile(b"external_id,title\nrec-item,Matrix mug\n"), save=True)
    test = ABTest.objects.create(name="matrix", variants=[{"name": "A", "weights": {"popularity": 1.0}},
                                                          {"name": "B", "weights": {"content": 1.0}}])
    evaluation = EvaluationRun.objects.create(params={"cutoff": "2025-01-01T00:00:00+00:00", "k": 10,
                                                      "kinds": ["purchase"]})
    from apps.recommend.services.widget import widget_key_create

    key = widget_key_create(name="matrix", allowed_origins=["https://shop.example"], user=None)
    return {"rec_import": run.pk, "rec_abtest": test.pk, "rec_evaluation": evaluation.pk, "rec_widget_key": key.pk}
