"""Request-time recommendations: a user's list and an item's similar items, with reasons.

Nothing here fits or builds anything: the fitted recommenders come from ``engine_get`` and
the item index from ``item_index_get``. Live state is applied on top: the user's recent
events (so a click changes the next list at once), items unavailable or deleted since the
fit are dropped, and every item shown is logged as an impression (for CTR and A/B tests):
at once, or, with ``log_later``, by ``impressions_save`` once the caller has answered (the
API stores them after the response is sent, so the shopper does not wait for the write).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from apps.recommend.models import ABTest, Event, EventKind, Impression, Item, Surface
from apps.recommend.services.abtests import serving_setup, variant_for
from apps.recommend.services.engine import engine_get, interaction_of
from apps.recommend.services.index import neighbours
from ml.recommend.blend import blend_lists
from ml.recommend.types import Filters, Interaction, Reason, Scored

logger = logging.getLogger(__name__)

HISTORY_EVENTS = 100  # newest events of the user read per request (their "session" signal)
BOUGHT_LIMIT = 5000  # distinct purchased items excluded from a list (heavy buyers: the latest)
OVERFETCH = 3  # candidates asked per slot: some fall to live filters (unavailable, deleted)
# Similar items: text neighbours ("Similar to X") and co-bought items ("Often bought with X")
# weigh the same; each list's scores are rescaled to [0, 1] first (cosines and co-occurrence
# similarities are on unrelated scales), then summed: an item in both lists ranks high.
SIMILAR_WEIGHTS = {"content": 1.0, "cooccurrence": 1.0}
MEMBER_LABELS = {"content": "content", "cooccurrence": "co-occurrence", "als": "ALS", "popularity": "popularity",
                 "trending": "trending"}


class NotReady(Exception):
    """Nothing fitted yet: the fit task has not run."""


@dataclass
class Recommended:
    """One item of a list. ``score`` is what the list is ordered by (the blended score);
    ``contributions`` splits it by recommender (weight x that recommender's rescaled score)."""

    item: Item
    score: float
    reason: str
    reason_kind: str
    anchor_item: str | None = None
    impression_id: str | None = None
    contributions: dict[str, float] = field(default_factory=dict)

    @property
    def contributions_text(self) -> str:
        """e.g. "content 0.41 · co-occurrence 0.20", largest first (shares under 0.005 left out
        unless none is larger)."""
        shares = sorted(self.contributions.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = [(name, share) for name, share in shares if share >= 0.005] or shares[:1]
        return " · ".join(f"{MEMBER_LABELS.get(name, name)} {share:.2f}" for name, share in shown)


@dataclass
class RecommendationList:
    results: list[Recommended]
    ab_test: ABTest | None = None
    variant: str = ""
    fitted: str = ""
    notes: list[str] = field(default_factory=list)
    diversity: float = 0.0  # > 0: re-ranked for variety (MMR) after blending, so not in score order
    unsaved: list[Impression] = field(default_factory=list)  # impressions for impressions_save


def k_check(k: int) -> int:
    limit = settings.TRELLIS_RECOMMEND_MAX_K
    if not 1 <= k <= limit:
        raise ValidationError(f"k must be between 1 and {limit}")
    return k


def _history_and_bought(user_key: str, session_key: str) -> tuple[list[Interaction], set[str], dict[str, str]]:
    """The newest ``HISTORY_EVENTS`` events (oldest first), the items bought and the titles of
    the history's items (the anchors of "Because you bought X").

    One query when they are all the events there are (most shoppers); a second one for the
    purchases of a shopper with a longer history.
    """
    if user_key:
        events = Event.objects.filter(user_key=user_key)
        actor = user_key
    elif session_key:
        events = Event.objects.filter(session_key=session_key, user_key="")
        actor = f"session:{session_key}"
    else:
        return [], set(), {}
    rows = list(events.order_by("-ts", "-id").values_list("item__external_id", "kind", "ts", "value", "item__title")
                [:HISTORY_EVENTS + 1])
    history = [interaction_of(actor, item, kind, ts, value)
               for item, kind, ts, value, _ in reversed(rows[:HISTORY_EVENTS])]
    bought = {event.item for event in history if event.kind == EventKind.PURCHASE}
    if len(rows) > HISTORY_EVENTS:
        bought |= set(events.filter(kind=EventKind.PURCHASE).order_by()
                      .values_list("item__external_id", flat=True).distinct()[:BOUGHT_LIMIT])
    return history, bought, {row[0]: row[4] for row in rows}


def _live(candidates: list[Scored], k: int, *, include: str, exclude: str,
          skip: set[str] = frozenset()) -> list[tuple[Scored, Item]]:  # type: ignore[assignment]
    """Candidates still in the catalogue, available and in the asked categories, best first.

    Rows are read for the best ``2 x k`` candidates first (one query: most lists end there),
    then for the next ones only while the live filters leave fewer than ``k``.
    """
    kept: list[tuple[Scored, Item]] = []
    seen = set(skip)
    start = 0
    while len(kept) < k and start < len(candidates):
        chunk = [c for c in candidates[start:start + 2 * k] if c.item not in seen]
        start += 2 * k
        by_id = {item.external_id: item for item in Item.objects.filter(
            external_id__in=[c.item for c in chunk], available=True).defer("embedding")}
        for candidate in chunk:
            item = by_id.get(candidate.item)
            if item is None or candidate.item in seen or (include and item.category != include) \
                    or (exclude and item.category == exclude):
                continue
            kept.append((candidate, item))
            seen.add(candidate.item)
            if len(kept) == k:
                break
    return kept


def _titles(pairs: list[tuple[Scored, Item]], known: dict[str, str]) -> dict[str, str]:
    anchors = {s.reason.anchor_item for s, _ in pairs if s.reason.anchor_item}
    titles = {**known, **{item.external_id: item.title for _, item in pairs}}
    missing = anchors - set(titles)
    if missing:
        titles.update(Item.objects.filter(external_id__in=missing).values_list("external_id", "title"))
    return titles


def _impressions(pairs: list[tuple[Scored, Item]], *, surface: str, user_key: str, session_key: str,
                 test: ABTest | None, variant: str) -> list[Impression]:
    """Unsaved impression rows; their ids exist already (a UUID made here), so the answer can
    carry them before they are stored."""
    return [Impression(item=item, position=position, surface=surface, user_key=user_key,
                       session_key=session_key, ab_test=test, variant=variant)
            for position, (_, item) in enumerate(pairs)]


def impressions_save(result: RecommendationList) -> int:
    """Stores the impressions of ``result`` not stored yet (once); returns how many.

    Called after the answer was sent, an item deleted in between makes the write fail: that
    list is then not counted (logged), and the caller is not disturbed.
    """
    rows, result.unsaved = result.unsaved, []
    if not rows:
        return 0
    try:
        Impression.objects.bulk_create(rows)
    except IntegrityError:
        logger.warning("impressions of %s items not stored (an item was deleted meanwhile)", len(rows), exc_info=True)
        return 0
    return len(rows)


def _results(pairs: list[tuple[Scored, Item]], impressions: list[Impression],
             titles: dict[str, str]) -> list[Recommended]:
    titles = _titles(pairs, titles)
    return [
        Recommended(item=item, score=round(scored.score, 6), reason=scored.reason.text(titles),
                    reason_kind=scored.reason.kind, anchor_item=scored.reason.anchor_item,
                    impression_id=str(impressions[n].impression_id) if impressions else None,
                    contributions={name: round(part, 4) for name, part in scored.parts.items()})
        for n, (scored, item) in enumerate(pairs)
    ]


def _answer(pairs: list[tuple[Scored, Item]], *, log: bool, log_later: bool, surface: str, user_key: str,
            session_key: str, test: ABTest | None = None, variant: str = "", titles: dict[str, str] | None = None,
            **fields: Any) -> RecommendationList:
    impressions = _impressions(pairs, surface=surface, user_key=user_key, session_key=session_key, test=test,
                               variant=variant) if log else []
    result = RecommendationList(results=_results(pairs, impressions, titles or {}), ab_test=test, variant=variant,
                                unsaved=impressions, **fields)
    if not log_later:
        impressions_save(result)
    return result


def recommendation_list(*, user_key: str = "", session_key: str = "", k: int = 10, category: str = "",
                        exclude_category: str = "", surface: str = Surface.USER, log: bool = True,
                        log_later: bool = False) -> RecommendationList:
    """The ``k`` best items for a user (or an anonymous session), each with its reason.

    ``log``: record an impression per item shown; ``log_later``: leave them in ``unsaved``
    for the caller to store with ``impressions_save`` once it has answered.
    """
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
    history, bought, titles = _history_and_bought(user_key, session_key)
    filters = Filters(include_categories=frozenset({category}) if category else None,
                      exclude_categories=frozenset({exclude_category}) if exclude_category else frozenset())
    known_user = user_key if user_key else None
    try:
        blend = fitted.blend(weights, diversity)
    except LookupError as exc:
        raise NotReady(f"The last fit produced no usable recommender ({exc}); see its manifest.") from exc
    candidates = blend.recommend(known_user, k * OVERFETCH + 5, history=history, exclude=bought, filters=filters)
    pairs = _live(candidates, k, include=category, exclude=exclude_category, skip=bought)
    return _answer(pairs, log=log, log_later=log_later, surface=surface, user_key=user_key, session_key=session_key,
                   test=test, variant=variant, fitted=fitted.name, diversity=float(diversity or 0.0), titles=titles)


def similar_list(*, item: Item, k: int = 10, user_key: str = "", session_key: str = "",
                 surface: str = Surface.SIMILAR, log: bool = True, log_later: bool = False) -> RecommendationList:
    """Items like ``item``: nearest by text embedding ("Similar to X") and often bought with it
    ("Often bought with X", once the recommenders are fitted), blended with ``SIMILAR_WEIGHTS``.
    A new item has no purchases yet, so its embedding neighbours carry it (cold start for items)."""
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
    merged = blend_lists({"content": by_text, "cooccurrence": co_bought}, SIMILAR_WEIGHTS)
    pairs = _live(merged, k, include="", exclude="", skip={item.external_id})
    return _answer(pairs, log=log, log_later=log_later, surface=surface, user_key=user_key, session_key=session_key,
                   fitted=fitted.name if fitted else "", notes=notes, titles={item.external_id: item.title})


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
