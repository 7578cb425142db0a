"""Content-based recommendations from item text embeddings, searched in ``ml.index``.

The user vector is the recency-weighted mean of the embeddings of the items in the
request's ``history`` (weighted by event strength too), so a click changes the next
recommendation without refitting. New items need no events: once embedded they are in the
index and can be recommended and shown as similar items (item cold start).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.index import VectorIndex
from ml.recommend.base import RecommenderBase, anchor_reason, history_weights, purchased
from ml.recommend.types import DEFAULT_FILTERS, Catalogue, Filters, Interaction, Reason, Scored

INDEX_FILE = "items.faiss"


class ContentRecommender(RecommenderBase):
    """Nearest items to the user's recent taste in embedding space.

    Args:
        name: see ``RecommenderBase``.
        half_life_days: recency half-life of history events (relative to the latest one).
        max_history: only the most strongly weighted distinct history items count.
        index_kind: ``ml.index`` kind (``auto``: Flat below 50k items, HNSW above).
        filters: default filters.
    """

    kind = "content"
    needs_embeddings = True

    def __init__(self, *, name: str = "content", half_life_days: float = 14.0, max_history: int = 50,
                 index_kind: str = "auto", filters: Filters = DEFAULT_FILTERS) -> None:
        super().__init__(name=name, filters=filters)
        self.half_life_days = half_life_days
        self.max_history = max_history
        self.index_kind = index_kind
        self._index: VectorIndex | None = None

    def fit(self, interactions: Sequence[Interaction], catalogue: Catalogue) -> None:
        """Indexes the catalogue's embeddings (events are not needed; without embeddings
        this recommender returns nothing)."""
        self._set_catalogue(catalogue)
        self._index = None
        if catalogue.embeddings is not None and len(catalogue):
            self._index = VectorIndex.build(np.arange(len(catalogue)), catalogue.embeddings, self.index_kind)

    def add_items(self, items: Sequence[str], embeddings: np.ndarray, *,
                  categories: Mapping[str, str] | None = None, available: bool = True) -> None:
        """Adds or replaces items after ``fit`` without rebuilding (new-item cold start).

        Args:
            items: external ids; existing ones get their embedding replaced.
            embeddings: ``(len(items), dim)``, L2-normalised.
            categories: item -> category for the new items.
            available: whether the new items may be recommended now.
        """
        catalogue = self._require_catalogue()
        if self._index is None or catalogue.embeddings is None:
            raise RuntimeError(f"{self.name}: fit with embeddings before adding items")
        vectors = np.asarray(embeddings, dtype=np.float32).reshape(len(items), -1)
        matrix = catalogue.embeddings
        new = [i for i in dict.fromkeys(items) if i not in catalogue]
        matrix = np.vstack([matrix, np.zeros((len(new), matrix.shape[1]), dtype=np.float32)])
        updated = Catalogue(items=[*catalogue.items, *new], categories={**catalogue.categories, **(categories or {})},
                            available=set(catalogue.available), embeddings=matrix)
        rows = np.array([updated.position(i) for i in items], dtype=np.int64)
        updated.embeddings[rows] = vectors  # type: ignore[index]
        if available:
            updated.available.update(items)
        self._index.add(rows, vectors)
        self._set_catalogue(updated)

    def _profile(self, history: Sequence[Interaction]) -> tuple[np.ndarray, list[int]] | None:
        """(user vector, history rows) or None when no history item has an embedding."""
        catalogue = self._require_catalogue()
        weights = history_weights(history, self.half_life_days)
        ranked = sorted(weights.items(), key=lambda kv: -kv[1])[: self.max_history]
        rows: list[tuple[int, float]] = []
        for item, w in ranked:
            pos = catalogue.position(item)
            if pos is not None and w > 0:
                rows.append((pos, w))
        if not rows or catalogue.embeddings is None:
            return None
        positions = [p for p, _ in rows]
        strengths = np.array([w for _, w in rows], dtype=np.float32)
        vector = (catalogue.embeddings[positions] * strengths[:, None]).sum(axis=0) / strengths.sum()
        norm = float(np.linalg.norm(vector))
        return (vector / norm if norm > 0 else vector), positions

    def _search(self, vector: np.ndarray, k: int, mask: np.ndarray) -> np.ndarray:
        """Scores (cosine; -inf outside the searched neighbours) over the catalogue."""
        assert self._index is not None  # noqa: S101 - callers check
        blocked = int((~mask).sum())
        scores = np.full(len(mask), -np.inf)
        fetch = min(len(self._index), k + blocked + 20)
        for row, score in self._index.search(vector, fetch)[0]:
            scores[row] = score
        return scores

    def recommend(self, user: str | None, k: int, *, history: Sequence[Interaction] = (),
                  exclude: Collection[str] = (), filters: Filters | None = None) -> list[Scored]:
        """Items nearest to the history's weighted mean embedding; no history: ``[]``."""
        filters = filters or self.filters
        catalogue = self._require_catalogue()
        profile = self._profile(history) if self._index is not None else None
        if profile is None:
            return []
        vector, positions = profile
        mask = self._mask(self._blocked(exclude, history, filters), filters)
        scores = self._search(vector, k, mask)
        embeddings = catalogue.embeddings
        assert embeddings is not None  # noqa: S101 - _profile checked

        def reasons(rows: np.ndarray) -> list[Reason]:
            # The anchor is the history item closest to each recommendation.
            closest = np.argmax(embeddings[rows] @ embeddings[positions].T, axis=1)
            bought = purchased(history)
            return [anchor_reason(catalogue.items[positions[c]], history, user, bought) for c in closest.tolist()]

        return self._top(scores, k, mask, reasons)

    def similar(self, item: str, k: int, *, exclude: Collection[str] = (),
                filters: Filters | None = None) -> list[Scored]:
        """Embedding neighbours of ``item`` ("Similar to X"); unknown item: ``[]``."""
        filters = filters or self.filters
        catalogue = self._require_catalogue()
        pos = catalogue.position(item)
        if pos is None or self._index is None or catalogue.embeddings is None:
            return []
        mask = self._mask({*exclude, item}, filters)
        scores = self._search(catalogue.embeddings[pos], k, mask)
        return self._top(scores, k, mask, lambda rows: [Reason("similar_to", anchor_item=item)] * len(rows))

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "half_life_days": self.half_life_days, "max_history": self.max_history,
                "index_kind": self.index_kind}

    def write(self, folder: Path) -> None:
        super().write(folder)
        if self._index is not None:
            self._index.save(folder / INDEX_FILE)

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> None:
        path = folder / INDEX_FILE
        self._index = VectorIndex.load(path) if path.is_file() else None
