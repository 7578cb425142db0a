"""A/B tests: stable assignment, per-variant metrics with Wilson intervals, stopping with a winner."""

from __future__ import annotations

import pytest

from apps.recommend.models import ABTest, Event, Impression, RecommenderConfig
from apps.recommend.services.abtests import abtest_create, abtest_results, variant_for, wilson_interval
from tests.recommend.factories import fitted_shop

pytestmark = pytest.mark.django_db

VARIANTS = [{"name": "A", "weights": {"cooccurrence": 1, "popularity": 0.2}},
            {"name": "B", "weights": {"popularity": 1}}]


def test_assignment_is_stable_and_spreads_users():
    test = abtest_create(name="t", variants=VARIANTS, user=None)
    again = ABTest.objects.get(pk=test.pk)  # another request, another process: same answer

    first = [variant_for(test, f"user-{n}") for n in range(400)]

    assert first == [variant_for(again, f"user-{n}") for n in range(400)]
    assert 150 < first.count("A") < 250


def test_wilson_interval_known_values():
    low, high = wilson_interval(10, 100)
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)
    assert wilson_interval(0, 0) == (0.0, 0.0)
    assert wilson_interval(0, 20)[0] == 0.0


def test_only_one_test_runs_at_a_time_and_variants_are_checked(merch_client):
    assert merch_client.post("/api/recommend/abtests/", {"name": "t1", "variants": VARIANTS}).status_code == 201
    second = merch_client.post("/api/recommend/abtests/", {"name": "t2", "variants": VARIANTS})
    assert second.status_code == 400 and "running" in second.json()["error"]["message"]
    ABTest.objects.all().delete()
    unknown = [{"name": "A", "weights": {"magic": 1}}, VARIANTS[1]]
    assert merch_client.post("/api/recommend/abtests/", {"name": "t3", "variants": unknown}).status_code == 400


def test_recommendations_follow_the_variant_and_metrics_count_per_variant(merch_client):
    items = fitted_shop()
    test_id = merch_client.post("/api/recommend/abtests/", {"name": "blend vs popular",
                                                             "variants": VARIANTS}).json()["id"]
    test = ABTest.objects.get(pk=test_id)
    for n in range(6):
        body = merch_client.get(f"/api/recommend/users/c{n}/recommendations/", {"k": 2}).json()
        assert body["variant"] == variant_for(test, f"c{n}") and body["ab_test"] == test_id
    shown = Impression.objects.filter(ab_test=test).order_by("pk").first()
    merch_client.post("/api/recommend/clicks/", {"impression_id": str(shown.impression_id)})
    Event.objects.create(event_id="buy-after", user_key=shown.user_key, item=shown.item, kind="purchase",
                         ts=shown.created_at)

    results = {row["name"]: row for row in abtest_results(test)}

    assert sum(row["impressions"] for row in results.values()) == 12
    winner = results[shown.variant]
    assert (winner["clicks"], winner["purchases"]) == (1, 1)
    assert winner["ctr_ci"][0] < winner["ctr"] < winner["ctr_ci"][1]
    assert items


def test_stopping_makes_the_winner_the_default_blend(merch_client):
    test_id = merch_client.post("/api/recommend/abtests/", {"name": "t", "variants": VARIANTS}).json()["id"]

    bad = merch_client.post(f"/api/recommend/abtests/{test_id}/stop/", {"winner": "C"})
    stopped = merch_client.post(f"/api/recommend/abtests/{test_id}/stop/", {"winner": "B", "make_default": True})

    assert bad.status_code == 400
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert RecommenderConfig.objects.get(name="default").weights == {"popularity": 1.0}
    assert merch_client.post(f"/api/recommend/abtests/{test_id}/stop/", {}).status_code == 400
