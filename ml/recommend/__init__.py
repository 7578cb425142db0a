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
    """Content + co-occurrence + ALS + popularity, with the weights tuned on Online Retail's
    validation split (bench/eval_recommend.py) unless ``weights`` are given."""
    members: list[RecommenderBase] = [ContentRecommender(), CoOccurrenceRecommender(), ALSRecommender(),
                                      PopularityRecommender()]
    return Blend(weights or dict(DEFAULT_WEIGHTS), members, diversity=diversity)


# Chosen by bench/eval_recommend.py on Online Retail's validation split (fit before 2011-09-01,
# scored on September), never on the test period; neighbours within 0.0003 Recall@10 of it.
DEFAULT_WEIGHTS: dict[str, float] = {"content": 0.25, "cooccurrence": 1.0, "als": 1.0, "popularity": 0.1}

__all__ = [
    "DEFAULT_FILTERS", "DEFAULT_WEIGHTS", "EVENT_KINDS", "EVENT_WEIGHTS", "REASON_KINDS", "ALSRecommender", "Blend",
    "Catalogue", "CoOccurrenceRecommender", "ContentRecommender", "Diversity", "Filters", "Interaction",
    "PopularityRecommender", "Reason", "Recommender", "RecommenderBase", "Scored", "default_blend", "load",
]
