from __future__ import annotations

import numpy as np

from ml.recommend import ContentRecommender

from .conftest import buy


def test_similar_items_are_embedding_neighbours(catalogue, events):
    content = ContentRecommender()
    content.fit(events, catalogue)
    similar = content.similar("mug_red", 2)
    assert [s.item for s in similar] == ["mug_blue", "mug_green"]
    assert similar[0].reason.kind == "similar_to" and similar[0].reason.anchor_item == "mug_red"


def test_recent_events_weigh_more(catalogue):
    content = ContentRecommender(half_life_days=1)
    content.fit([], catalogue)
    # A toy viewed 10 days ago, a mug viewed now: the mugs come first
    history = [buy("u", "toy_car", 0, kind="view"), buy("u", "mug_red", 10, kind="view")]
    recs = content.recommend("u", 3, history=history)
    assert [s.item for s in recs[:2]] == ["mug_blue", "mug_green"]
    assert recs[0].reason.kind == "because_viewed" and recs[0].reason.anchor_item == "mug_red"
    # The same history the other way round flips the order
    flipped = [buy("u", "mug_red", 0, kind="view"), buy("u", "toy_car", 10, kind="view")]
    assert content.recommend("u", 1, history=flipped)[0].item == "toy_bus"


def test_anonymous_session_and_no_history(catalogue):
    content = ContentRecommender()
    content.fit([], catalogue)
    recs = content.recommend(None, 1, history=[buy("s1", "toy_car", 1, kind="click")])
    assert recs[0].item == "toy_bus" and recs[0].reason.kind == "your_session"
    assert content.recommend("u", 3) == []


def test_new_item_is_found_without_refit(catalogue):
    content = ContentRecommender()
    content.fit([], catalogue)
    vector = np.array([[0.02, 0.98, 0.0, 0.0]], dtype=np.float32)
    content.add_items(["toy_train"], vector / np.linalg.norm(vector), categories={"toy_train": "toys"})
    assert content.similar("toy_car", 1)[0].item == "toy_train"
    assert content.similar("toy_train", 1)[0].item in {"toy_car", "toy_bus"}
