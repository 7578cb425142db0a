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
        self._set_scores(np.empty(0, dtype=np.float64))

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
        self._set_scores(scores)

    def _set_scores(self, scores: np.ndarray) -> None:
        # The scores are fixed between fits, so their order is too: a request walks it
        # instead of ranking the whole catalogue (~0.1 ms instead of ~2 ms at 100,000 items).
        self._scores = scores
        ranked = np.argsort(-scores, kind="stable")
        self._order = ranked[: int((scores > 0).sum())]
        self._category_order: dict[int, np.ndarray] = {}

    def _order_of(self, code: int) -> np.ndarray:
        """Rows of category ``code`` with a score, best first (computed on first use)."""
        if code not in self._category_order:
            self._category_order[code] = self._order[self._category_codes[self._order] == code]
        return self._category_order[code]

    @staticmethod
    def _first(order: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
        """The first ``k`` rows of ``order`` that ``mask`` allows (reads growing chunks)."""
        found: list[np.ndarray] = []
        count, start, step = 0, 0, max(4 * k, 64)
        while count < k and start < len(order):
            chunk = order[start:start + step]
            allowed = chunk[mask[chunk]]
            found.append(allowed)
            count += len(allowed)
            start, step = start + step, step * 4
        return np.concatenate(found)[:k] if found else np.empty(0, dtype=np.int64)

    def _global_reason(self) -> Reason:
        return Reason(self.reason_kind)

    def recommend(self, user: str | None, k: int, *, history: Sequence[Interaction] = (),
                  exclude: Collection[str] = (), filters: Filters | None = None) -> list[Scored]:
        """Popular items, lifted in the categories of ``history``; ``user`` is not needed."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        filters = filters or self.filters
        catalogue = self._require_catalogue()
        mask = self._mask(self._blocked(exclude, history, filters), filters)
        share: dict[int, float] = {}
        for event in history:
            pos = catalogue.position(event.item)
            if pos is not None and self._category_codes[pos] >= 0:
                code = int(self._category_codes[pos])
                share[code] = share.get(code, 0.0) + event.strength
        total = sum(share.values())
        lift = {code: self.category_boost * value / total for code, value in share.items()
                if total > 0 and self.category_boost > 0 and value > 0}
        # A lift multiplies a whole category, so the best lifted items are among the first k
        # of their category and the best others among the first k overall: rank just those.
        rows = np.unique(np.concatenate([self._first(self._order, mask, k),
                                         *(self._first(self._order_of(code), mask, k) for code in lift)]))
        if not len(rows):
            return []
        factor = np.array([1.0 + lift.get(int(code), 0.0) for code in self._category_codes[rows]])
        scores = self._scores[rows] * factor
        best = np.lexsort((rows, -scores))[:k]
        out = []
        for r, score in zip(rows[best].tolist(), scores[best].tolist(), strict=True):
            code = int(self._category_codes[r])
            why = (Reason("popular_in_category", category=self._category_names[code]) if code in lift
                   else self._global_reason())
            out.append(Scored(catalogue.items[r], float(score), why))
        return out

    def similar(self, item: str, k: int, *, exclude: Collection[str] = (),
                filters: Filters | None = None) -> list[Scored]:
        """Popular items of ``item``'s category ("Popular in Y"); unknown item: ``[]``."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        filters = filters or self.filters
        catalogue = self._require_catalogue()
        pos = catalogue.position(item)
        if pos is None:
            return []
        code = int(self._category_codes[pos])
        if code < 0:
            return []
        rows = self._first(self._order_of(code), self._mask({*exclude, item}, filters), k)
        category = self._category_names[code]
        return [Scored(catalogue.items[r], float(self._scores[r]), Reason("popular_in_category", category=category))
                for r in rows.tolist()]

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
        self._set_scores(arrays["scores"].astype(np.float64))
