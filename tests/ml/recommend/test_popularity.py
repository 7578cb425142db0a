from __future__ import annotations

import pytest

from ml.recommend import PopularityRecommender

from .conftest import buy


def test_decay_halves_an_event_per_half_life(catalogue):
    # Given two purchases of mug_red today and three of toy_car two half-lives ago
    events = [buy("a", "mug_red", 20), buy("b", "mug_red", 20),
              buy("c", "toy_car", 0), buy("d", "toy_car", 0), buy("e", "toy_car", 0)]
    pop = PopularityRecommender(half_life_days=10)
    pop.fit(events, catalogue)
    # Then the older item counts a quarter per event and ranks below
    assert pop.item_scores() == pytest.approx({"mug_red": 2.0, "toy_car": 0.75})
    assert [s.item for s in pop.recommend(None, 5)] == ["mug_red", "toy_car"]
    # And without decay the count wins
    flat = PopularityRecommender(half_life_days=0)
    flat.fit(events, catalogue)
    assert [s.item for s in flat.recommend(None, 5)] == ["toy_car", "mug_red"]


def test_history_lifts_its_categories_with_that_reason(catalogue, events):
    pop = PopularityRecommender(half_life_days=0, category_boost=3.0)
    pop.fit(events, catalogue)
    assert pop.recommend(None, 1)[0].item == "mug_red"
    top = pop.recommend("zed", 2, history=[buy("zed", "lamp", 9, kind="view"), buy("zed", "toy_car", 9, kind="view")])
    assert top[0].item == "toy_bus"  # toy_car and the lamp were viewed: not offered again
    assert top[0].reason.kind == "popular_in_category" and top[0].reason.category == "toys"
    assert pop.recommend(None, 1)[0].reason.kind == "popular"


def test_trending_reason_and_similar_in_category(catalogue, events):
    trending = PopularityRecommender(name="trending", half_life_days=1, reason_kind="trending")
    trending.fit(events, catalogue)
    assert trending.recommend(None, 1)[0].item == "mug_red"  # eve bought it last
    assert trending.recommend(None, 1)[0].reason.kind == "trending"
    similar = trending.similar("mug_green", 5)
    assert {s.item for s in similar} == {"mug_red", "mug_blue"}
    assert trending.similar("unknown", 3) == []
