from __future__ import annotations

import pytest

from ml.recommend import (
    Blend,
    ContentRecommender,
    CoOccurrenceRecommender,
    Diversity,
    Filters,
    PopularityRecommender,
    Reason,
    Scored,
)
from ml.recommend.blend import normalise

from .conftest import buy


def _blend(catalogue, events, **options):
    blend = Blend({"content": 1.0, "cooccurrence": 1.0, "popularity": 0.2},
                  [ContentRecommender(), CoOccurrenceRecommender(), PopularityRecommender(half_life_days=0)], **options)
    blend.fit(events, catalogue)
    return blend


def test_normalise_rescales_each_member_to_unit_range():
    scored = [Scored("a", 10.0, Reason("popular")), Scored("b", 4.0, Reason("popular")),
              Scored("c", 2.0, Reason("popular"))]
    assert normalise(scored) == pytest.approx([1.0, 0.25, 0.0])
    assert normalise(scored[:1]) == [1.0]


def test_combine_sums_weights_and_keeps_the_top_contributors_reason(catalogue, events):
    blend = _blend(catalogue, events)
    lists = {
        "content": [Scored("x", 0.9, Reason("similar_to", "a")), Scored("y", 0.1, Reason("similar_to", "a"))],
        "popularity": [Scored("y", 50.0, Reason("popular")), Scored("x", 10.0, Reason("popular"))],
    }
    out = blend.combine(lists, 2, {"content": 1.0, "popularity": 0.5})
    assert [(s.item, s.score) for s in out] == [("x", 1.0), ("y", 0.5)]
    assert out[0].reason.kind == "similar_to" and out[1].reason.kind == "popular"


def test_cold_start_user_gets_popular_then_session_items(catalogue, events):
    blend = _blend(catalogue, events)
    cold = blend.recommend(None, 3)
    assert [s.item for s in cold][0] == "mug_red" and all(s.reason.kind == "popular" for s in cold)
    session = blend.recommend(None, 2, history=[buy("s", "toy_car", 9, kind="view")])
    assert session[0].item == "toy_bus"
    assert session[0].reason.kind == "your_session" and session[0].reason.anchor_item == "toy_car"


def test_filters_bought_unavailable_and_categories(catalogue, events):
    blend = _blend(catalogue, events)
    history = [buy("eve", "mug_red", 6)]
    items = [s.item for s in blend.recommend("eve", 6, history=history)]
    assert "mug_red" not in items and items[:2] == ["mug_blue", "mug_green"]
    catalogue.available.discard("mug_blue")
    blend.fit(events, catalogue)
    assert "mug_blue" not in [s.item for s in blend.recommend("eve", 6, history=history)]
    only_toys = blend.recommend("eve", 6, history=history, filters=Filters(include_categories=frozenset({"toys"})))
    assert {s.item for s in only_toys} == {"toy_car", "toy_bus"}
    no_mugs = blend.recommend("eve", 6, history=history, filters=Filters(exclude_categories=frozenset({"mugs"})))
    assert all(catalogue.categories[s.item] != "mugs" for s in no_mugs)
    keep_bought = blend.recommend("eve", 6, history=history, exclude={"toy_bus"},
                                  filters=Filters(exclude_purchased=False, exclude_interacted=False))
    assert "mug_red" in [s.item for s in keep_bought] and "toy_bus" not in [s.item for s in keep_bought]
    viewed = [*history, buy("eve", "lamp", 7, kind="view")]
    only_bought_out = [s.item for s in blend.recommend("eve", 6, history=viewed,
                                                       filters=Filters(exclude_interacted=False))]
    assert "lamp" in only_bought_out and "mug_red" not in only_bought_out


def test_mmr_and_category_cap_diversify(catalogue, events):
    history = [buy("u", "mug_red", 9, kind="view")]
    plain = [s.item for s in _blend(catalogue, events).recommend("u", 3, history=history)]
    assert plain[:2] == ["mug_blue", "mug_green"]
    mmr = _blend(catalogue, events, diversity=Diversity(mmr_lambda=0.3)).recommend("u", 3, history=history)
    assert mmr[0].item == "mug_blue" and mmr[1].item != "mug_green"
    capped = _blend(catalogue, events, diversity=Diversity(max_per_category=1)).recommend("u", 3, history=history)
    cats = [catalogue.categories[s.item] for s in capped]
    assert len(cats) == len(set(cats)) == 3
    with pytest.raises(ValueError, match="mmr_lambda"):
        Diversity(mmr_lambda=1.5)


def test_bad_configuration_and_k_are_rejected(catalogue, events):
    with pytest.raises(ValueError, match="unknown members"):
        Blend({"nope": 1.0}, [PopularityRecommender()])
    with pytest.raises(ValueError, match="k must be"):
        _blend(catalogue, events).recommend(None, 0)


def test_of_fitted_blends_members_without_refitting(catalogue, events):
    pop = PopularityRecommender(half_life_days=0)
    content = ContentRecommender()
    pop.fit(events, catalogue)
    content.fit(events, catalogue)
    blend = Blend.of_fitted({"popularity": 1.0, "content": 1.0}, [pop, content])
    assert blend.recommend(None, 1)[0].item == "mug_red"
    with pytest.raises(RuntimeError, match="fitted"):
        Blend.of_fitted({"popularity": 1.0}, [PopularityRecommender()])
