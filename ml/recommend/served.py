"""The served blend: which recommenders, set up how, with which weights by default.

One definition for the two places that must agree: ``apps.recommend`` fits these members and
serves their blend with ``SERVED_WEIGHTS`` until an A/B test picks other weights, and
``bench/eval_recommend.py`` evaluates exactly this configuration on Online Retail, so the
figure in the README is what shoppers get.
"""

from __future__ import annotations

from collections.abc import Callable

from ml.recommend.als import ALSRecommender
from ml.recommend.base import RecommenderBase
from ml.recommend.blend import Blend
from ml.recommend.content import ContentRecommender
from ml.recommend.cooccurrence import CoOccurrenceRecommender
from ml.recommend.diversity import Diversity
from ml.recommend.popularity import PopularityRecommender

# "Trending": popularity with a 7-day half-life (fixed beforehand, not tuned): what sells now,
# the best guess for shoppers without history.
TRENDING_HALF_LIFE_DAYS = 7.0
# Co-occurrence neighbours kept per item: 300 gave Recall@10 0.036 vs 0.035 for 100 on Online
# Retail's validation split (3.7k items); at 100,000 items at most 300 x 8 bytes per item.
COOCCURRENCE_NEIGHBOURS = 300

MEMBERS: dict[str, Callable[[], RecommenderBase]] = {
    "content": ContentRecommender,
    "cooccurrence": lambda: CoOccurrenceRecommender(neighbours=COOCCURRENCE_NEIGHBOURS),
    "als": ALSRecommender,
    "popularity": PopularityRecommender,
    "trending": lambda: PopularityRecommender(
        name="trending", half_life_days=TRENDING_HALF_LIFE_DAYS, reason_kind="trending"
    ),
}
MEMBER_NAMES = tuple(MEMBERS)

# Chosen by bench/eval_recommend.py's grid on Online Retail's validation split (fit before
# 2011-09-01, scored on September), never on the test period. Popularity weighs 0 here (trending
# carries the cold start) but is still fitted: it is the evaluation's baseline, the fallback
# when nothing else fitted, and A/B variants may weigh it.
SERVED_WEIGHTS: dict[str, float] = {
    "content": 0.5,
    "cooccurrence": 0.5,
    "als": 1.0,
    "popularity": 0.0,
    "trending": 0.25,
}


def member_build(name: str) -> RecommenderBase:
    """A fresh, unfitted member of the served blend.

    Raises:
        KeyError: ``name`` is not one of ``MEMBER_NAMES``.
    """
    return MEMBERS[name]()


def served_members() -> list[RecommenderBase]:
    """Every member, unfitted, in ``MEMBER_NAMES`` order."""
    return [member_build(name) for name in MEMBER_NAMES]


def served_blend(weights: dict[str, float] | None = None, *, diversity: Diversity | None = None) -> Blend:
    """The served blend, unfitted (``SERVED_WEIGHTS`` unless ``weights`` are given)."""
    return Blend(dict(SERVED_WEIGHTS if weights is None else weights), served_members(), diversity=diversity)
