from __future__ import annotations

import math

import pytest

from ml.metrics import ndcg_at_k, recall_at_k
from ml.recommend import Catalogue, PopularityRecommender, Reason, Scored
from ml.recommend.evaluate import evaluate, temporal_split

from .conftest import buy


def test_metrics_on_a_hand_made_list():
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, {"b", "d", "z"}, 2) == pytest.approx(1 / 3)
    assert ndcg_at_k(ranked, {"b", "d"}, 4) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))


def test_split_drops_seen_pairs_and_keeps_cold_users():
    events = [buy("ann", "a", 1), buy("ann", "b", 2, kind="view"),
              buy("ann", "a", 11), buy("ann", "b", 12), buy("ann", "c", 13),
              buy("new", "a", 14), buy("ann", "d", 15, kind="view")]
    split = temporal_split(events, cutoff=10 * 86_400.0)
    assert [e.item for e in split.train] == ["a", "b"]
    assert split.test == {"ann": {"c"}, "new": {"a"}}  # a and b were seen by ann before T; views don't count
    assert split.report["test_events_already_seen"] == 2
    assert (split.report["warm_users"], split.report["cold_users"]) == (1, 1)
    window = temporal_split(events, cutoff=10 * 86_400.0, end=13.5 * 86_400.0)
    assert window.test == {"ann": {"c"}}


class _Fixed:
    """Returns a fixed list to each user."""

    name = "fixed"

    def __init__(self, lists):
        self.lists = lists

    def recommend(self, user, k, *, history=(), exclude=(), filters=None):
        return [Scored(i, 1.0, Reason("popular")) for i in self.lists[user][:k]]


def test_evaluate_reports_groups_and_coverage():
    events = [buy("ann", "x", 1), buy("ann", "c", 11), buy("new", "a", 12)]
    split = temporal_split(events, cutoff=10 * 86_400.0)
    catalogue = Catalogue(items=["a", "b", "c", "x"])
    result = evaluate({"fixed": _Fixed({"ann": ["b", "c"], "new": ["b", "c"]})}, split, catalogue, ks=(1, 2))
    fixed = result["results"]["fixed"]
    assert fixed["warm"]["recall@2"] == 1.0 and fixed["warm"]["recall@1"] == 0.0
    assert fixed["cold"]["recall@2"] == 0.0 and fixed["all"]["recall@2"] == 0.5
    assert fixed["all"]["ndcg@2"] == pytest.approx(0.5 * (1 / math.log2(3)))
    assert fixed["coverage@1"] == 0.25 and fixed["coverage@2"] == 0.5
    warm_only = evaluate({"fixed": _Fixed({"ann": ["c"]})}, split, catalogue, ks=(1,), cold_users=False)
    assert warm_only["results"]["fixed"]["all"]["users"] == 1


def test_popularity_never_recommends_what_the_user_bought_before_t(catalogue, events):
    split = temporal_split(events + [buy("ann", "mug_green", 30)], cutoff=20 * 86_400.0)
    pop = PopularityRecommender(half_life_days=0, category_boost=0)
    pop.fit(split.train, catalogue)
    # Unfiltered top 3 would be mug_red (3 buyers), mug_blue, a toy: no hit
    result = evaluate({"popularity": pop}, split, catalogue, ks=(3,))
    assert result["results"]["popularity"]["all"]["recall@3"] == 1.0
