"""The served blend is one definition: its members, their setup, its weights (ml.recommend.served)."""

from __future__ import annotations

import pytest

from ml.recommend import (
    ALSRecommender,
    ContentRecommender,
    CoOccurrenceRecommender,
    PopularityRecommender,
    default_blend,
)
from ml.recommend.served import (
    COOCCURRENCE_NEIGHBOURS,
    MEMBER_NAMES,
    SERVED_WEIGHTS,
    TRENDING_HALF_LIFE_DAYS,
    member_build,
    served_blend,
)


def test_the_served_blend_has_the_five_members_the_evaluation_measures():
    blend = served_blend()

    assert (
        [m.name for m in blend.members]
        == list(MEMBER_NAMES)
        == ["content", "cooccurrence", "als", "popularity", "trending"]
    )
    assert blend.weights == SERVED_WEIGHTS
    assert SERVED_WEIGHTS["trending"] > 0  # the member that lifted the blend past 2x popularity
    kinds = {m.name: type(m) for m in blend.members}
    assert kinds == {
        "content": ContentRecommender,
        "cooccurrence": CoOccurrenceRecommender,
        "als": ALSRecommender,
        "popularity": PopularityRecommender,
        "trending": PopularityRecommender,
    }


def test_members_are_set_up_as_evaluated():
    trending = member_build("trending")
    assert (trending.half_life_days, trending.reason_kind) == (TRENDING_HALF_LIFE_DAYS, "trending")
    assert member_build("popularity").reason_kind == "popular"
    assert member_build("cooccurrence").neighbours == COOCCURRENCE_NEIGHBOURS
    assert member_build("als") is not member_build("als")  # fresh, unfitted each time
    with pytest.raises(KeyError):
        member_build("magic")


def test_default_blend_is_the_served_blend():
    assert default_blend().weights == served_blend().weights
    assert [m.name for m in default_blend().members] == list(MEMBER_NAMES)


def test_the_served_weights_are_on_the_evaluations_validation_grid():
    # bench/eval_recommend.py reruns the grid and says whether the served weights are still its
    # pick: that needs them on the grid.
    from bench.eval_recommend import GRID

    assert set(GRID) == set(MEMBER_NAMES)
    assert all(SERVED_WEIGHTS[name] in values for name, values in GRID.items())
