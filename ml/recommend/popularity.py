"""Time-decayed popularity, global and per category: the baseline and the cold-start fallback."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.recommend.base import RecommenderBase, decay
from ml.recommend.types import DEFAULT_FILTERS, Catalogue, Filters, Interaction, Reason, Scored


class PopularityRecommender(RecommenderBase):
    """Items ranked by the summed, recency-decayed strength of their events.

    With a ``history``, items in the categories the user touched are boosted
    (``score x (1 + category_boost x share of the history in that category)``) and explained
    as "Popular in <category>". A short half-life makes a "trending" recommender.

    Args:
        name: see ``RecommenderBase``.
        half_life_days: an event this old counts half (<= 0: no decay).
        reason_kind: ``popular`` or ``trending``: the reason given for global picks.
        category_boost: how much the user's categories lift their items (0: global only).
        now: the reference time for decay; default the latest event seen by ``fit``.
        filters: default filters.
    """

    kind = "popularity"

    def __init__(self, *, name: str = "popularity", half_life_days: float = 30.0, reason_kind: str = "popular",
                 category_boost: float = 1.0, now: float | None = None, filters: Filters = DEFAULT_FILTERS) -> None:
        super().__init__(name=name, filters=filters)
        if reason_kind not in {"popular", "trending"}:
            raise ValueError(f"reason_kind must be 'popular' or 'trending', got {reason_kind!r}")
        self.half_life_days = half_life_days
        self.reason_kind = reason_kind
        self.category_boost = category_boost
        self.now = now
        self._scores = np.empty(0, dtype=np.float64)

    def fit(self, interactions: Sequence[Interaction], catalogue: Catalogue) -> None:
        """Sums decayed event strengths per catalogue item (events on unknown items are ignored)."""
        self._set_catalogue(catalogue)
        scores = np.zeros(len(catalogue), dtype=np.float64)
        known = [(catalogue.position(e.item), e) for e in interactions]
        known = [(p, e) for p, e in known if p is not None]
        if known:
            reference = self.now if self.now is not None else max(e.ts for _, e in known)
            rows = np.array([p for p, _ in known], dtype=np.int64)
            weights = np.array([e.strength for _, e in known]) * decay(
                np.array([e.ts for _, e in known]), reference, self.half_life_days)
            np.add.at(scores, rows, weights)
        self._scores = scores

    def _global_reason(self) -> Reason:
        return Reason(self.reason_kind)

    def recommend(self, user: str | None, k: int, *, history: Sequence[Interaction] = (),
                  exclude: Collection[str] = (), filters: Filters | None = None) -> list[Scored]:
        """Popular items, lifted in the categories of ``history``; ``user`` is not needed."""
        filters = filters or self.filters
        catalogue = self._require_catalogue()
        mask = self._mask(self._blocked(exclude, history, filters), filters)
        share = np.zeros(len(self._category_names) + 1)  # last slot: "no category" (code -1)
        for event in history:
            pos = catalogue.position(event.item)
            if pos is not None and self._category_codes[pos] >= 0:
                share[self._category_codes[pos]] += event.strength
        if share.sum() > 0:
            share /= share.sum()
        lift = share[self._category_codes]
        scores = np.where(self._scores > 0, self._scores * (1.0 + self.category_boost * lift), -np.inf)

        def reasons(rows: np.ndarray) -> list[Reason]:
            out = []
            for r in rows.tolist():
                code = int(self._category_codes[r])
                if lift[r] > 0 and self.category_boost > 0:
                    out.append(Reason("popular_in_category", category=self._category_names[code]))
                else:
                    out.append(self._global_reason())
            return out

        return self._top(scores, k, mask, reasons)

    def similar(self, item: str, k: int, *, exclude: Collection[str] = (),
                filters: Filters | None = None) -> list[Scored]:
        """Popular items of ``item``'s category ("Popular in Y"); unknown item: ``[]``."""
        filters = filters or self.filters
        catalogue = self._require_catalogue()
        pos = catalogue.position(item)
        if pos is None:
            return []
        code = int(self._category_codes[pos])
        mask = self._mask({*exclude, item}, filters)
        if code < 0:
            return []
        mask &= self._category_codes == code
        scores = np.where(self._scores > 0, self._scores, -np.inf)
        category = self._category_names[code]
        return self._top(scores, k, mask, lambda rows: [Reason("popular_in_category", category=category)] * len(rows))

    def item_scores(self) -> dict[str, float]:
        """Item -> decayed popularity (only items with events)."""
        catalogue = self._require_catalogue()
        return {catalogue.items[i]: float(s) for i, s in enumerate(self._scores.tolist()) if s > 0}

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "half_life_days": self.half_life_days, "reason_kind": self.reason_kind,
                "category_boost": self.category_boost, "now": self.now}

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"scores": self._scores}

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> None:
        self._scores = arrays["scores"].astype(np.float64)
