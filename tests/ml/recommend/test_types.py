from __future__ import annotations

import numpy as np
import pytest

from ml.recommend import Catalogue, Interaction, Reason, Recommender, default_blend


def test_reason_texts_use_titles():
    titles = {"m1": "Red mug"}
    assert Reason("because_bought", anchor_item="m1").text(titles) == "Because you bought Red mug"
    assert Reason("because_viewed", anchor_item="m1").text(titles) == "Because you viewed Red mug"
    assert Reason("similar_to", anchor_item="m1").text(titles) == "Similar to Red mug"
    assert Reason("co_bought", anchor_item="m1").text(titles) == "Often bought with Red mug"
    assert Reason("popular_in_category", category="Kitchen").text(titles) == "Popular in Kitchen"
    assert Reason("popular").text(titles) == "Popular"
    assert Reason("similar_to", anchor_item="zz").text(titles) == "Similar to zz"


def test_bad_kinds_and_catalogues_are_rejected():
    with pytest.raises(ValueError, match="kind"):
        Interaction("u", "i", "like", 0.0)
    with pytest.raises(ValueError, match="reason kind"):
        Reason("because_magic")
    with pytest.raises(ValueError, match="unique"):
        Catalogue(items=["a", "a"])
    with pytest.raises(ValueError, match="embeddings"):
        Catalogue(items=["a", "b"], embeddings=np.zeros((3, 4)))


def test_event_strength_is_kind_weight_times_weight():
    assert Interaction("u", "i", "purchase", 0.0).strength == 1.0
    assert Interaction("u", "i", "rating", 0.0, weight=0.6).strength == pytest.approx(0.6)
    assert Interaction("u", "i", "view", 0.0).strength < Interaction("u", "i", "cart", 0.0).strength


def test_every_recommender_meets_the_protocol():
    blend = default_blend()
    assert isinstance(blend, Recommender)
    assert all(isinstance(m, Recommender) for m in blend.members)
