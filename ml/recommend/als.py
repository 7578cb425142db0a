"""Matrix factorisation with ``implicit``'s alternating least squares (CPU)."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from scipy import sparse
from threadpoolctl import threadpool_limits

from ml.recommend import persist
from ml.recommend.base import RecommenderBase, anchor_reason, decay, history_weights, inner_products, purchased
from ml.recommend.types import DEFAULT_FILTERS, Catalogue, Filters, Interaction, Reason, Scored


def _threads() -> int:
    # Same cap as torch and FAISS (ml.devices) without importing torch here.
    try:
        return max(1, int(os.environ.get("TRELLIS_TORCH_THREADS", os.cpu_count() or 1)))
    except ValueError:
        return 1


class ALSRecommender(RecommenderBase):
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008) on the user-item strength matrix.

    Each (user, item) cell holds the summed strength of its events (``EVENT_WEIGHTS``);
    ``implicit`` takes ``alpha x cell`` as the confidence. A user seen by ``fit`` is scored
    with their fitted factors; a new user, or one whose request ``history`` holds items the
    fit did not see for them, is folded in: their factors are solved exactly from the item
    factors (one least-squares step), so ALS also serves cold-start sessions.

    Args:
        name: see ``RecommenderBase``.
        factors: latent dimensions.
        regularization: L2 penalty.
        alpha: confidence scale of the observed cells.
        iterations: ALS sweeps.
        random_state: seed of the factor initialisation.
        half_life_days: recency half-life of the events' strengths, relative to the latest
            event of the fit (<= 0: no decay); recent tastes predict the next purchases better.
        filters: default filters.
    """

    kind = "als"

    # Defaults picked on Online Retail's validation split (bench/eval_recommend.py): 128 factors
    # and alpha 1 gave Recall@10 0.042 vs 0.038 for 64 factors and alpha 10, 0.032 for alpha 40;
    # a 240-day half-life on the cells raised it to 0.045 (60 days: 0.044, none: 0.042).
    def __init__(self, *, name: str = "als", factors: int = 128, regularization: float = 0.05, alpha: float = 1.0,
                 iterations: int = 15, random_state: int = 0, half_life_days: float = 240.0,
                 filters: Filters = DEFAULT_FILTERS) -> None:
        super().__init__(name=name, filters=filters)
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.half_life_days = half_life_days
        self._users: dict[str, int] = {}
        self._user_factors = np.empty((0, factors), dtype=np.float32)
        self._item_factors = np.empty((0, factors), dtype=np.float32)
        self._user_items = sparse.csr_matrix((0, 0), dtype=np.float32)
        self._gram: np.ndarray | None = None
        self._unit: np.ndarray | None = None

    def fit(self, interactions: Sequence[Interaction], catalogue: Catalogue) -> None:
        """Factorises the user-item matrix (events on items outside the catalogue are ignored)."""
        self._set_catalogue(catalogue)
        users: dict[str, int] = {}
        rows, cols, vals, times = [], [], [], []
        for event in interactions:
            pos = catalogue.position(event.item)
            if pos is not None:
                rows.append(users.setdefault(event.user, len(users)))
                cols.append(pos)
                vals.append(event.strength)
                times.append(event.ts)
        weights = np.array(vals, dtype=np.float32)
        if times and self.half_life_days > 0:
            weights *= decay(np.array(times), max(times), self.half_life_days).astype(np.float32)
        matrix = sparse.csr_matrix((weights, (rows, cols)),
                                   shape=(len(users), len(catalogue)))
        matrix.sum_duplicates()
        model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                                        iterations=self.iterations, random_state=self.random_state,
                                        num_threads=_threads())
        # implicit runs its own threads; a multi-threaded BLAS underneath oversubscribes the cores.
        with threadpool_limits(1, "blas"):
            model.fit(matrix, show_progress=False)
        self._users = users
        self._user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self._item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._user_items = matrix
        self._gram = self._unit = None

    def _fold_in(self, cells: dict[int, float]) -> np.ndarray:
        """User factors for item -> strength ``cells`` (implicit's least-squares step)."""
        y = self._item_factors
        if self._gram is None:
            self._gram = y.T @ y
        a = self._gram + self.regularization * np.eye(y.shape[1], dtype=np.float32)
        rows = np.fromiter(cells.keys(), dtype=np.int64, count=len(cells))
        confidence = self.alpha * np.fromiter(cells.values(), dtype=np.float32, count=len(cells))
        touched = y[rows]
        a += (touched * (confidence - 1.0)[:, None]).T @ touched
        b = touched.T @ confidence
        return np.linalg.solve(a, b).astype(np.float32)

    def _user_vector(self, user: str | None, history: Sequence[Interaction]) -> tuple[np.ndarray, list[int]] | None:
        catalogue = self._require_catalogue()
        cells: dict[int, float] = {}
        row = self._users.get(user) if user is not None else None
        if row is not None:
            matrix = self._user_items  # the row's cells straight from the CSR arrays (getrow builds a matrix)
            start, end = matrix.indptr[row], matrix.indptr[row + 1]
            cells = dict(zip(matrix.indices[start:end].tolist(), matrix.data[start:end].tolist(), strict=True))
        fresh = False
        for item, strength in history_weights(history, half_life_days=0).items():
            pos = catalogue.position(item)
            if pos is not None and pos not in cells:
                cells[pos] = strength
                fresh = True
        if not cells:
            return None
        vector = self._user_factors[row] if row is not None and not fresh else self._fold_in(cells)
        return vector, list(cells)

    def _unit_factors(self) -> np.ndarray:
        """Item factors scaled to unit length (cosines for reasons and similar items), cached."""
        if self._unit is None:
            norms = np.linalg.norm(self._item_factors, axis=1, keepdims=True)
            self._unit = self._item_factors / np.maximum(norms, 1e-12)
        return self._unit

    def recommend(self, user: str | None, k: int, *, history: Sequence[Interaction] = (),
                  exclude: Collection[str] = (), filters: Filters | None = None) -> list[Scored]:
        """Items with the highest predicted preference; no user and no history: ``[]``."""
        filters = filters or self.filters
        catalogue = self._require_catalogue()
        found = self._user_vector(user, history)
        if found is None:
            return []
        vector, touched = found
        scores = inner_products(self._item_factors, vector)
        mask = self._mask(self._blocked(exclude, history, filters), filters)
        unit = self._unit_factors()

        def reasons(rows: np.ndarray) -> list[Reason]:
            closest = np.argmax(unit[rows] @ unit[touched].T, axis=1)
            bought = purchased(history)
            return [anchor_reason(catalogue.items[touched[c]], history, user, bought) for c in closest.tolist()]

        return self._top(scores, k, mask, reasons)

    def similar(self, item: str, k: int, *, exclude: Collection[str] = (),
                filters: Filters | None = None) -> list[Scored]:
        """Items whose factors point the same way (cosine); unknown item: ``[]``."""
        filters = filters or self.filters
        catalogue = self._require_catalogue()
        pos = catalogue.position(item)
        if pos is None or not len(self._item_factors):
            return []
        unit = self._unit_factors()
        scores = inner_products(unit, unit[pos])
        mask = self._mask({*exclude, item}, filters)
        return self._top(scores, k, mask,
                         lambda rows: [Reason("similar_to", anchor_item=item)] * len(rows))

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "factors": self.factors, "regularization": self.regularization,
                "alpha": self.alpha, "iterations": self.iterations, "random_state": self.random_state,
                "half_life_days": self.half_life_days}

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"users": list(self._users)}, {
            "user_factors": self._user_factors, "item_factors": self._item_factors,
            **persist.csr_to_arrays("user_items", self._user_items)}

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> None:
        self._users = {u: i for i, u in enumerate(state["users"])}
        self._user_factors = arrays["user_factors"]
        self._item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        self._user_items = persist.csr_from_arrays("user_items", arrays)
        self._gram = self._unit = None
