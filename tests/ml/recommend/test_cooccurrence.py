from __future__ import annotations

import math

import pytest

from ml.recommend import CoOccurrenceRecommender

from .conftest import buy


def test_similarity_is_shrunk_cosine_of_co_buyers(catalogue, events):
    cooc = CoOccurrenceRecommender(shrink=1.0)
    cooc.fit(events, catalogue)
    got = {s.item: s.score for s in cooc.similar("mug_red", 5)}
    # mug_red: 3 buyers (ann, bob, eve); mug_blue: 2, both also bought mug_red; mug_green: 1 (bob)
    assert got == pytest.approx({"mug_blue": 2 / (math.sqrt(3 * 2) + 1), "mug_green": 1 / (math.sqrt(3) + 1)})
    assert all(s.reason.kind == "co_bought" and s.reason.anchor_item == "mug_red" for s in cooc.similar("mug_red", 5))
    assert cooc.similar("toy_car", 5)[0].item == "toy_bus"
    assert cooc.similar("lamp", 5) == []


def test_recommends_from_history_with_the_anchor_as_reason(catalogue, events):
    cooc = CoOccurrenceRecommender()
    cooc.fit(events, catalogue)
    history = [buy("eve", "mug_red", 6)]
    recs = cooc.recommend("eve", 5, history=history)
    assert [s.item for s in recs] == ["mug_blue", "mug_green"]
    assert recs[0].reason.kind == "because_bought" and recs[0].reason.anchor_item == "mug_red"
    assert cooc.recommend("eve", 5) == []  # no history, no evidence
