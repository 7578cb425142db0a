"""A weighted blend of recommenders with per-member score normalisation and diversity."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.recommend.base import RecommenderBase, read
from ml.recommend.diversity import Diversity, rerank
from ml.recommend.types import DEFAULT_FILTERS, Catalogue, Filters, Interaction, Reason, Scored

MEMBERS_DIR = "members"


def normalise(scored: Sequence[Scored]) -> list[float]:
    """Min-max rescaling of one member's list to [0, 1] (all equal: all 1).

    Members score on unrelated scales (cosines, co-occurrence sums, ALS dot products,
    decayed counts); rescaling each candidate list makes the blend weights mean what they say.
    """
    if not scored:
        return []
    values = np.array([s.score for s in scored], dtype=np.float64)
    span = values.max() - values.min()
    if span <= 0:
        return [1.0] * len(scored)
    return ((values - values.min()) / span).tolist()


def blend_lists(lists: Mapping[str, Sequence[Scored]], weights: Mapping[str, float]) -> list[Scored]:
    """Weighted sum of each list's rescaled scores, best first (ties: by item id).

    Each result keeps its members' contributions in ``parts`` (they add up to its score)
    and the reason of the member that contributed most.

    Args:
        lists: member name -> its candidates, best first.
        weights: member name -> weight (members missing or at 0 are left out).

    Returns:
        Every candidate of the weighted lists, blended.
    """
    total: dict[str, float] = {}
    parts: dict[str, dict[str, float]] = {}
    best: dict[str, tuple[float, Reason]] = {}
    for name, scored in lists.items():
        weight = weights.get(name, 0.0)
        if weight <= 0:
            continue
        for entry, norm in zip(scored, normalise(scored), strict=True):
            item, part = entry.item, weight * norm
            if item in total:
                total[item] += part
                parts[item][name] = part
                if part > best[item][0]:
                    best[item] = (part, entry.reason)
            else:
                total[item], parts[item], best[item] = part, {name: part}, (part, entry.reason)
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Scored(item, score, best[item][1], parts[item]) for item, score in ranked]


class Blend(RecommenderBase):
    """Sums members' normalised scores times their weights; the reason comes from the
    member that contributed most to an item.

    Cold start falls out of the members: for a new user without history only popularity
    answers; with a session history, content, co-occurrence and ALS (folded in) answer too.

    Args:
        weights: member name -> weight (members missing here weigh 0 and are not asked).
        members: the recommenders, each with a distinct ``name``.
        name: see ``RecommenderBase``.
        candidates: how many items each member proposes (at least 3 x k).
        diversity: MMR / category cap applied to the blended list; None: none.
        filters: default filters, passed to every member.
    """

    kind = "blend"

    def __init__(self, weights: Mapping[str, float], members: Sequence[RecommenderBase], *, name: str = "blend",
                 candidates: int = 100, diversity: Diversity | None = None,
                 filters: Filters = DEFAULT_FILTERS) -> None:
        super().__init__(name=name, filters=filters)
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be distinct, got {names}")
        unknown = set(weights) - set(names)
        if unknown:
            raise ValueError(f"weights name unknown members {sorted(unknown)}; members are {names}")
        if any(w < 0 for w in weights.values()):
            raise ValueError("weights must be >= 0")
        self.weights = dict(weights)
        self.members = list(members)
        self.candidates = candidates
        self.diversity = diversity

    @classmethod
    def of_fitted(cls, weights: Mapping[str, float], members: Sequence[RecommenderBase], **options: Any) -> Blend:
        """A blend over members already fitted (or loaded): nothing is refitted.

        Args:
            weights: as for the constructor.
            members: fitted recommenders sharing one catalogue.
            **options: ``name``, ``candidates``, ``diversity``, ``filters``.

        Raises:
            RuntimeError: no member is fitted.
        """
        blend = cls(weights, members, **options)
        catalogue = next((m.catalogue for m in members if m.catalogue is not None), None)
        if catalogue is None:
            raise RuntimeError("Blend.of_fitted needs fitted members")
        blend._set_catalogue(catalogue)
        return blend

    def fit(self, interactions: Sequence[Interaction], catalogue: Catalogue) -> None:
        """Fits every member on the same data."""
        self._set_catalogue(catalogue)
        for member in self.members:
            member.fit(interactions, catalogue)

    def _active(self) -> list[RecommenderBase]:
        return [m for m in self.members if self.weights.get(m.name, 0.0) > 0]

    def combine(self, lists: Mapping[str, Sequence[Scored]], k: int,
                weights: Mapping[str, float] | None = None) -> list[Scored]:
        """Blends members' candidate lists (exposed so weights can be tuned offline).

        Args:
            lists: member name -> its candidates, best first (already filtered).
            k: list length.
            weights: overrides ``self.weights`` (for tuning).

        Returns:
            The blended, diversified top ``k``.
        """
        weights = self.weights if weights is None else weights
        blended = blend_lists(lists, weights)
        return rerank(blended, k, self.diversity, self._require_catalogue())

    def member_lists(self, user: str | None, k: int, *, history: Sequence[Interaction] = (),
                     exclude: Collection[str] = (), filters: Filters | None = None) -> dict[str, list[Scored]]:
        """Each active member's candidates for a user."""
        n = max(self.candidates, 3 * k)
        filters = filters or self.filters
        return {m.name: m.recommend(user, n, history=history, exclude=exclude, filters=filters)
                for m in self._active()}

    def recommend(self, user: str | None, k: int, *, history: Sequence[Interaction] = (),
                  exclude: Collection[str] = (), filters: Filters | None = None) -> list[Scored]:
        """Blended recommendations for a user or an anonymous session."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return self.combine(self.member_lists(user, k, history=history, exclude=exclude, filters=filters), k)

    def similar(self, item: str, k: int, *, exclude: Collection[str] = (),
                filters: Filters | None = None) -> list[Scored]:
        """Blended similar items (content neighbours, co-bought, ALS neighbours, ...)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        n = max(self.candidates, 3 * k)
        filters = filters or self.filters
        lists = {m.name: m.similar(item, n, exclude=exclude, filters=filters) for m in self._active()}
        return self.combine(lists, k)

    def _config(self) -> dict[str, Any]:
        d = self.diversity
        return {**super()._config(), "weights": self.weights, "candidates": self.candidates,
                "members": [m.name for m in self.members],
                "diversity": None if d is None else {"mmr_lambda": d.mmr_lambda,
                                                     "max_per_category": d.max_per_category}}

    def write(self, folder: Path) -> None:
        super().write(folder)
        for member in self.members:
            member.write(folder / MEMBERS_DIR / member.name)

    @classmethod
    def from_config(cls, config: dict[str, Any], *, filters: Filters, folder: Path) -> Blend:
        # Members in their saved order: blending sums floats and breaks ties in that order.
        members = [read(folder / MEMBERS_DIR / name) for name in config.pop("members")]
        raw = config.pop("diversity", None)
        diversity = Diversity(**raw) if raw else None
        return cls(config.pop("weights"), members, diversity=diversity, filters=filters, **config)
