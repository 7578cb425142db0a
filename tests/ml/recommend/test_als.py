from __future__ import annotations

from ml.recommend import ALSRecommender

from .conftest import buy


def _fitted(catalogue, events):
    als = ALSRecommender(factors=4, iterations=20, regularization=0.01, alpha=20.0)
    als.fit(events, catalogue)
    return als


def test_known_user_gets_items_of_their_group(catalogue, events):
    als = _fitted(catalogue, events)
    history = [e for e in events if e.user == "ann"]
    recs = als.recommend("ann", 1, history=history)
    assert recs[0].item == "mug_green"  # the mug bob bought with the same basket
    assert recs[0].reason.kind == "because_bought"
    assert recs[0].reason.anchor_item in {"mug_red", "mug_blue"}


def test_new_user_is_folded_in_from_history(catalogue, events):
    als = _fitted(catalogue, events)
    recs = als.recommend("newbie", 1, history=[buy("newbie", "toy_car", 9)])
    assert recs[0].item == "toy_bus"
    assert als.recommend("newbie", 3) == []
    assert als.similar("toy_car", 1)[0].item == "toy_bus"
