"""Request-time recommendations: a user's list and an item's similar items, with reasons.

Nothing here fits or builds anything: the fitted recommenders come from ``engine_get`` and
the item index from ``item_index_get``. Live state is applied on top: the user's recent
events (so a click changes the next list at once), items unavailable or deleted since the
fit are dropped, and every item shown is logged as an impression (for CTR and A/B tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.recommend.models import ABTest, Event, EventKind, Impression, Item, Surface
from apps.recommend.services.abtests import serving_setup, variant_for
from apps.recommend.services.engine import engine_get, interaction_of
from apps.recommend.services.index import neighbours
from ml.recommend.types import Filters, Interaction, Reason, Scored

HISTORY_EVENTS = 100  # newest events of the user read per request (their "session" signal)
OVERFETCH = 3  # candidates asked per slot: some fall to live filters (unavailable, deleted)


class NotReady(Exception):
    """Nothing fitted yet: the fit task has not run."""


@dataclass
class Recommended:
    item: Item
    score: float
    reason: str
    reason_kind: str
    anchor_item: str | None = None
    impression_id: str | None = None


@dataclass
class RecommendationList:
    results: list[Recommended]
    ab_test: ABTest | None = None
    variant: str = ""
    fitted: str = ""
    notes: list[str] = field(default_factory=list)


def k_check(k: int) -> int:
    limit = settings.TRELLIS_RECOMMEND_MAX_K
    if not 1 <= k <= limit:
        raise ValidationError(f"k must be between 1 and {limit}")
    return k


def _history(user_key: str, session_key: str) -> list[Interaction]:
    if user_key:
        events = Event.objects.filter(user_key=user_key)
        actor = user_key
    elif session_key:
        events = Event.objects.filter(session_key=session_key, user_key="")
        actor = f"session:{session_key}"
    else:
        return []
    rows = events.order_by("-ts", "-id").values_list("item__external_id", "kind", "ts", "value")[:HISTORY_EVENTS]
    return [interaction_of(actor, item, kind, ts, value) for item, kind, ts, value in reversed(rows)]


def _bought(user_key: str, history: list[Interaction]) -> set[str]:
    bought = {event.item for event in history if event.kind == EventKind.PURCHASE}
    if user_key:
        bought |= set(Event.objects.filter(user_key=user_key, kind=EventKind.PURCHASE)
                      .values_list("item__external_id", flat=True).distinct()[:5000])
    return bought


def _live(candidates: list[Scored], k: int, *, include: str, exclude: str,
          skip: set[str] = frozenset()) -> list[tuple[Scored, Item]]:  # type: ignore[assignment]
    """Candidates still in the catalogue, available and in the asked categories, best first.

    The filter reads two columns of every candidate; whole rows are read for the ``k`` kept only.
    """
    category_of = dict(Item.objects.filter(external_id__in=[c.item for c in candidates], available=True)
                       .values_list("external_id", "category"))
    kept: list[Scored] = []
    for candidate in candidates:
        category = category_of.get(candidate.item)
        if category is None or candidate.item in skip or (include and category != include) \
                or (exclude and category == exclude):
            continue
        kept.append(candidate)
        skip = {*skip, candidate.item}
        if len(kept) == k:
            break
    by_id = {item.external_id: item
             for item in Item.objects.filter(external_id__in=[c.item for c in kept]).defer("embedding")}
    return [(candidate, by_id[candidate.item]) for candidate in kept if candidate.item in by_id]


def _titles(pairs: list[tuple[Scored, Item]]) -> dict[str, str]:
    anchors = {s.reason.anchor_item for s, _ in pairs if s.reason.anchor_item}
    titles = {item.external_id: item.title for _, item in pairs}
    missing = anchors - set(titles)
    if missing:
        titles.update(Item.objects.filter(external_id__in=missing).values_list("external_id", "title"))
    return titles


def _log(pairs: list[tuple[Scored, Item]], *, surface: str, user_key: str, session_key: str,
         test: ABTest | None, variant: str) -> list[str]:
    rows = [Impression(item=item, position=position, surface=surface, user_key=user_key,
                       session_key=session_key, ab_test=test, variant=variant)
            for position, (_, item) in enumerate(pairs)]
    Impression.objects.bulk_create(rows)
    return [str(row.impression_id) for row in rows]


def _results(pairs: list[tuple[Scored, Item]], ids: list[str] | None) -> list[Recommended]:
    titles = _titles(pairs)
    return [
        Recommended(item=item, score=round(scored.score, 6), reason=scored.reason.text(titles),
                    reason_kind=scored.reason.kind, anchor_item=scored.reason.anchor_item,
                    impression_id=ids[n] if ids else None)
        for n, (scored, item) in enumerate(pairs)
    ]


def recommendation_list(*, user_key: str = "", session_key: str = "", k: int = 10, category: str = "",
                        exclude_category: str = "", surface: str = Surface.USER,
                        log: bool = True) -> RecommendationList:
    """The ``k`` best items for a user (or an anonymous session), each with its reason."""
    k_check(k)
    fitted = engine_get()
    if fitted is None:
        raise NotReady("No recommender has been fitted yet: run the fit (POST /api/recommend/fit/).")
    test, config = serving_setup()
    variant = ""
    weights, diversity = config.weights, config.diversity
    if test is not None and (user_key or session_key):
        variant = variant_for(test, user_key or f"session:{session_key}")
        chosen = next(v for v in test.variants if v["name"] == variant)
        weights, diversity = chosen["weights"], chosen.get("diversity", 0.0)
    else:
        test = None
    history = _history(user_key, session_key)
    bought = _bought(user_key, history)
    filters = Filters(include_categories=frozenset({category}) if category else None,
                      exclude_categories=frozenset({exclude_category}) if exclude_category else frozenset())
    known_user = user_key if user_key else None
    try:
        blend = fitted.blend(weights, diversity)
    except LookupError as exc:
        raise NotReady(f"The last fit produced no usable recommender ({exc}); see its manifest.") from exc
    candidates = blend.recommend(known_user, k * OVERFETCH + 5, history=history, exclude=bought, filters=filters)
    pairs = _live(candidates, k, include=category, exclude=exclude_category, skip=bought)
    ids = _log(pairs, surface=surface, user_key=user_key, session_key=session_key, test=test, variant=variant) \
        if log else None
    return RecommendationList(results=_results(pairs, ids), ab_test=test, variant=variant, fitted=fitted.name)


def similar_list(*, item: Item, k: int = 10, user_key: str = "", session_key: str = "",
                 surface: str = Surface.SIMILAR, log: bool = True) -> RecommendationList:
    """Items like ``item``: nearest by text embedding ("Similar to X"), interleaved with those
    often bought with it ("Often bought with X") once the recommenders are fitted. A new item
    has no purchases yet, so its embedding neighbours carry it (cold start for items)."""
    k_check(k)
    by_text = [Scored(str(pk), score, Reason("similar_to", anchor_item=item.external_id))
               for pk, score in neighbours(item, k * OVERFETCH)]
    pk_to_external = dict(Item.objects.filter(pk__in=[int(s.item) for s in by_text])
                          .values_list("pk", "external_id"))
    by_text = [Scored(pk_to_external[int(s.item)], s.score, s.reason) for s in by_text if int(s.item) in pk_to_external]
    co_bought: list[Scored] = []
    fitted = engine_get()
    notes = []
    if fitted is not None and "cooccurrence" in fitted.members:
        co_bought = fitted.members["cooccurrence"].similar(item.external_id, k * OVERFETCH, exclude={item.external_id})
    if not by_text:
        notes.append("The item has no embedding in the index yet (the index task embeds new items).")
    merged: list[Scored] = []
    for pair in zip(co_bought, by_text, strict=False):
        merged.extend(pair)
    longer = co_bought if len(co_bought) > len(by_text) else by_text
    merged.extend(longer[min(len(co_bought), len(by_text)):])
    pairs = _live(merged, k, include="", exclude="", skip={item.external_id})
    ids = _log(pairs, surface=surface, user_key=user_key, session_key=session_key, test=None, variant="") \
        if log else None
    return RecommendationList(results=_results(pairs, ids), fitted=fitted.name if fitted else "", notes=notes)


def impression_click(*, impression_id: Any) -> Impression | None:
    """Marks an impression clicked (the first click counts); None if unknown."""
    from django.utils import timezone

    impression = Impression.objects.filter(impression_id=impression_id).first()
    if impression is None:
        return None
    if impression.clicked_at is None:
        Impression.objects.filter(pk=impression.pk, clicked_at__isnull=True).update(clicked_at=timezone.now())
        impression.refresh_from_db(fields=["clicked_at"])
    return impression
