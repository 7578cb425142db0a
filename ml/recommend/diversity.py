"""Diversity re-ranking: maximal marginal relevance and a per-category cap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.recommend.types import Catalogue, Scored


@dataclass(frozen=True)
class Diversity:
    """How to trade relevance for variety in a final list.

    Attributes:
        mmr_lambda: MMR weight of relevance in [0, 1] (1: relevance only; 0.7 is a common
            start); None: no MMR. Similarity is the cosine of item embeddings, or "same
            category" (1/0) when the catalogue has no embeddings.
        max_per_category: at most this many items of one category (None: no cap).
    """

    mmr_lambda: float | None = None
    max_per_category: int | None = None

    def __post_init__(self) -> None:
        if self.mmr_lambda is not None and not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        if self.max_per_category is not None and self.max_per_category < 1:
            raise ValueError(f"max_per_category must be >= 1, got {self.max_per_category}")


def _similarity(items: list[str], catalogue: Catalogue) -> np.ndarray:
    rows = [r for r in (catalogue.position(i) for i in items) if r is not None]
    if catalogue.embeddings is not None and len(rows) == len(items):
        vectors = catalogue.embeddings[rows]
        return vectors @ vectors.T
    cats = [catalogue.categories.get(i) for i in items]
    return np.array([[1.0 if a is not None and a == b else 0.0 for b in cats] for a in cats])


def rerank(candidates: list[Scored], k: int, diversity: Diversity | None, catalogue: Catalogue) -> list[Scored]:
    """The ``k`` items to show, chosen greedily from ``candidates`` (best first).

    MMR picks, at each step, the candidate maximising
    ``lambda x relevance - (1 - lambda) x max similarity to the items already picked``,
    relevance being the candidate's score rescaled to [0, 1]. The category cap skips a
    candidate whose category is already full.

    Args:
        candidates: scored items, best first.
        k: list length.
        diversity: the rules; None returns the first ``k`` candidates.
        catalogue: categories and embeddings.

    Returns:
        At most ``k`` items, in display order, with their original scores and reasons.
    """
    if diversity is None or (diversity.mmr_lambda is None and diversity.max_per_category is None):
        return candidates[:k]
    cap = diversity.max_per_category
    per_category: dict[str, int] = {}

    def fits(item: str) -> bool:
        category = catalogue.categories.get(item)
        return cap is None or category is None or per_category.get(category, 0) < cap

    def take(chosen: Scored) -> None:
        category = catalogue.categories.get(chosen.item)
        if category is not None:
            per_category[category] = per_category.get(category, 0) + 1

    if diversity.mmr_lambda is None:
        picked: list[Scored] = []
        for candidate in candidates:
            if len(picked) == k:
                break
            if fits(candidate.item):
                picked.append(candidate)
                take(candidate)
        return picked

    lam = diversity.mmr_lambda
    scores = np.array([c.score for c in candidates], dtype=np.float64)
    span = scores.max() - scores.min() if len(scores) else 0.0
    relevance = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    sim = _similarity([c.item for c in candidates], catalogue)
    closest = np.full(len(candidates), 0.0)  # max similarity to the picked items
    open_ = np.ones(len(candidates), dtype=bool)
    picked_rows: list[int] = []
    while len(picked_rows) < k and open_.any():
        value = np.where(open_, lam * relevance - (1 - lam) * closest, -np.inf)
        best = int(np.argmax(value))
        open_[best] = False
        if not fits(candidates[best].item):
            continue
        picked_rows.append(best)
        take(candidates[best])
        closest = np.maximum(closest, sim[best])
    return [candidates[r] for r in picked_rows]
