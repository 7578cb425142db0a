"""The shared vocabulary of the recommenders: events, reasons, scored items, the catalogue.

Every recommender in ``ml.recommend`` implements :class:`Recommender`; the Django side
(``apps.recommend``) builds :class:`Interaction` and :class:`Catalogue` objects from its
tables and reads back :class:`Scored` items, each carrying the :class:`Reason` shown to the
shopper. Items and users are the caller's external ids (strings).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

EVENT_KINDS = ("view", "click", "cart", "purchase", "rating")
# How much one event says about interest, relative to a purchase (1.0). A view is weak and
# frequent; adding to the cart is most of the way to a purchase. A rating's own weight
# (Interaction.weight, e.g. stars / 5) multiplies its kind weight.
EVENT_WEIGHTS: dict[str, float] = {"view": 0.1, "click": 0.25, "cart": 0.5, "purchase": 1.0, "rating": 1.0}

REASON_KINDS = (
    "because_bought",
    "because_viewed",
    "similar_to",
    "co_bought",
    "popular",
    "popular_in_category",
    "trending",
    "your_session",
)


@dataclass(frozen=True)
class Interaction:
    """One behaviour event.

    Attributes:
        user: the user's (or anonymous session's) external id.
        item: the item's external id.
        kind: one of ``EVENT_KINDS``.
        ts: when it happened, Unix seconds.
        weight: multiplies the kind's weight in ``EVENT_WEIGHTS`` (a rating's stars / 5,
            a purchase's quantity if the caller wants it counted).
    """

    user: str
    item: str
    kind: str
    ts: float
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in EVENT_WEIGHTS:
            raise ValueError(f"kind must be one of {EVENT_KINDS}, got {self.kind!r}")

    @property
    def strength(self) -> float:
        """The event's weight as evidence of interest: kind weight x own weight."""
        return EVENT_WEIGHTS[self.kind] * self.weight


@dataclass(frozen=True)
class Reason:
    """Why an item was recommended, shown to the shopper.

    Attributes:
        kind: one of ``REASON_KINDS``.
        anchor_item: the item the recommendation hangs on ("because you bought X").
        category: the category for ``popular_in_category``.
    """

    kind: str
    anchor_item: str | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in REASON_KINDS:
            raise ValueError(f"reason kind must be one of {REASON_KINDS}, got {self.kind!r}")

    def text(self, titles: Mapping[str, str]) -> str:
        """The sentence shown beside the recommendation.

        Args:
            titles: item id -> title; an id missing from it is shown as itself.

        Returns:
            e.g. "Because you bought Red mug", "Popular in Kitchen", "Similar to Red mug".
        """
        anchor = titles.get(self.anchor_item, self.anchor_item) if self.anchor_item else None
        if self.kind == "because_bought" and anchor:
            return f"Because you bought {anchor}"
        if self.kind == "because_viewed" and anchor:
            return f"Because you viewed {anchor}"
        if self.kind == "similar_to" and anchor:
            return f"Similar to {anchor}"
        if self.kind == "co_bought" and anchor:
            return f"Often bought with {anchor}"
        if self.kind == "your_session" and anchor:
            return f"Based on {anchor} in your session"
        if self.kind == "popular_in_category" and self.category:
            return f"Popular in {self.category}"
        if self.kind == "trending":
            return "Trending now"
        if self.kind == "your_session":
            return "Based on your session"
        return "Popular"

    def to_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "anchor_item": self.anchor_item, "category": self.category}


@dataclass
class Scored:
    """A recommended item with its score (higher is better; scale depends on the source).

    Attributes:
        item: the item's external id.
        score: what the list is ordered by.
        reason: why it is recommended.
        parts: for a blend, member name -> its contribution (weight x the member's score
            rescaled to [0, 1]); they add up to ``score``. Empty for a single recommender.
    """

    item: str
    score: float
    reason: Reason
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Filters:
    """Request-time rules on which items may be recommended.

    Attributes:
        include_categories: if set, only items in these categories.
        exclude_categories: never items in these categories.
        available_only: drop items not in ``Catalogue.available``.
        exclude_purchased: drop items the user bought (purchases in ``history``).
        exclude_interacted: drop every item in ``history`` (viewed, clicked, carted too):
            "because you viewed X" should not offer X itself.
    """

    include_categories: frozenset[str] | None = None
    exclude_categories: frozenset[str] = frozenset()
    available_only: bool = True
    exclude_purchased: bool = True
    exclude_interacted: bool = True


DEFAULT_FILTERS = Filters()


@dataclass
class Catalogue:
    """The items a recommender may return.

    Attributes:
        items: external ids; position i is the item's row everywhere (embeddings, factors).
        categories: item -> category (items without one are simply absent).
        available: items that may be recommended now (in stock, published).
        embeddings: ``(len(items), dim)`` float32, row i = ``items[i]``, L2-normalised; None
            when the items have not been embedded (content recommendations are then empty).
    """

    items: list[str]
    categories: dict[str, str] = field(default_factory=dict)
    available: set[str] = field(default_factory=set)
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(set(self.items)) != len(self.items):
            raise ValueError("catalogue items must be unique")
        if self.embeddings is not None:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
            if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.items):
                raise ValueError(
                    f"embeddings must be ({len(self.items)}, dim), got {self.embeddings.shape}"
                )
        self._position = {item: i for i, item in enumerate(self.items)}

    def position(self, item: str) -> int | None:
        """Row of ``item`` (None when it is not in the catalogue)."""
        return self._position.get(item)

    def __contains__(self, item: object) -> bool:
        return item in self._position

    def __len__(self) -> int:
        return len(self.items)


@runtime_checkable
class Recommender(Protocol):
    """What every recommender and the blend offer.

    ``history`` is the user's recent events passed at request time, so content and session
    recommendations react at once without refitting; ``user=None`` is an anonymous
    session (cold start). Unknown users and items never raise: they get what the
    recommender can give (possibly an empty list); the blend falls back to popularity.
    """

    name: str

    def fit(self, interactions: Sequence[Interaction], catalogue: Catalogue) -> None: ...

    def recommend(
        self,
        user: str | None,
        k: int,
        *,
        history: Sequence[Interaction] = (),
        exclude: Collection[str] = (),
        filters: Filters | None = None,
    ) -> list[Scored]: ...

    def similar(
        self, item: str, k: int, *, exclude: Collection[str] = (), filters: Filters | None = None
    ) -> list[Scored]: ...

    def save(self, directory: Path | str) -> Path: ...
