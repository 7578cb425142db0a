"""Recommenders for ``apps.recommend`` (pure Python: no Django).

Every recommender implements ``ml.recommend.types.Recommender``: ``fit`` on interactions
and a catalogue, ``recommend`` for a user (or an anonymous session's ``history``),
``similar`` for an item, each result carrying its ``Reason``; ``save(dir)`` writes a new
version atomically and ``load(dir)`` reads whichever kind was saved there.
"""

from __future__ import annotations

from pathlib import Path

from ml.recommend.als import ALSRecommender
from ml.recommend.base import RecommenderBase
from ml.recommend.blend import Blend
from ml.recommend.content import ContentRecommender
from ml.recommend.cooccurrence import CoOccurrenceRecommender
from ml.recommend.diversity import Diversity
from ml.recommend.popularity import PopularityRecommender
from ml.recommend.served import MEMBER_NAMES, SERVED_WEIGHTS, member_build, served_blend
from ml.recommend.types import (
    DEFAULT_FILTERS,
    EVENT_KINDS,
    EVENT_WEIGHTS,
    REASON_KINDS,
    Catalogue,
    Filters,
    Interaction,
    Reason,
    Recommender,
    Scored,
)


def load(directory: Path | str) -> RecommenderBase:
    """The recommender (any kind, a blend with its members) last saved in ``directory``.

    Raises:
        FileNotFoundError: nothing saved there.
    """
    return RecommenderBase.load(directory)


def default_blend(weights: dict[str, float] | None = None, *, diversity: Diversity | None = None) -> Blend:
    """The served blend (``ml.recommend.served``): content, co-occurrence, ALS, popularity and
    trending with the weights chosen on Online Retail's validation split, unless ``weights``."""
    return served_blend(weights, diversity=diversity)


DEFAULT_WEIGHTS = SERVED_WEIGHTS

__all__ = [
    "DEFAULT_FILTERS", "DEFAULT_WEIGHTS", "EVENT_KINDS", "EVENT_WEIGHTS", "MEMBER_NAMES", "REASON_KINDS",
    "SERVED_WEIGHTS", "ALSRecommender", "Blend", "Catalogue", "CoOccurrenceRecommender", "ContentRecommender",
    "Diversity", "Filters", "Interaction", "PopularityRecommender", "Reason", "Recommender", "RecommenderBase",
    "Scored", "default_blend", "load", "member_build", "served_blend",
]
