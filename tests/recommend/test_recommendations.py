"""Recommendations and similar items: reasons, filters, cold start, live state, impressions, clicks."""

from __future__ import annotations

import pytest

from apps.recommend.models import Event, Impression, Item
from tests.recommend.factories import fitted_shop

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop_items():
    return fitted_shop()


def recs(client, user, **query):
    response = client.get(f"/api/recommend/users/{user}/recommendations/", query)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_kitchen_customer_gets_kitchen_items_with_reasons_and_never_what_they_bought(merch_client, shop_items):
    body = recs(merch_client, "c0", k=4)  # c0 bought k0, k1, k2

    ids = [r["item"]["external_id"] for r in body["results"]]
    assert len(ids) == 4 and not {"k0", "k1", "k2"} & set(ids)
    assert ids[0].startswith("k")
    assert all(r["reason"] for r in body["results"])
    assert any(r["reason"].startswith(("Because you bought", "Often bought with", "Similar to", "Popular"))
               for r in body["results"])
    assert Impression.objects.filter(user_key="c0", surface="user").count() == 4


def test_category_filters(merch_client, shop_items):
    only = recs(merch_client, "c0", k=5, category="Garden")["results"]
    without = recs(merch_client, "c1", k=5, exclude_category="Garden")["results"]

    assert only and {r["item"]["category"] for r in only} == {"Garden"}
    assert without and {r["item"]["category"] for r in without} == {"Kitchen"}


def test_unavailable_items_drop_out_at_once_without_a_refit(merch_client, shop_items):
    first = recs(merch_client, "c0", k=1)["results"][0]["item"]["external_id"]
    Item.objects.filter(external_id=first).update(available=False)

    again = [r["item"]["external_id"] for r in recs(merch_client, "c0", k=6)["results"]]

    assert first not in again


def test_cold_start_user_gets_popular_items(merch_client, shop_items):
    body = recs(merch_client, "never-seen", k=3)

    assert len(body["results"]) == 3
    assert {r["reason_kind"] for r in body["results"]} <= {"popular", "trending"}


def test_an_anonymous_session_reacts_to_its_events_before_any_refit(merch_client, shop_items):
    merch_client.post("/api/recommend/events/", {"events": [
        {"event_id": "v1", "session": "anon-1", "item": "g3", "kind": "view"}]})

    body = recs(merch_client, "visitor", session="anon-1", k=3)

    # "visitor" has no events; the session's view of a garden item steers the list.
    assert body["results"][0]["item"]["category"] == "Garden"


def test_similar_items_carry_their_reason_and_a_new_item_has_neighbours(merch_client, shop_items):
    similar = merch_client.get("/api/recommend/items/k0/similar/", {"k": 3}).json()["results"]
    assert len(similar) == 3 and "k0" not in [r["item"]["external_id"] for r in similar]
    assert all(r["reason"].startswith(("Similar to Red Ceramic Mug", "Often bought with Red Ceramic Mug"))
               for r in similar)

    # A new item, never bought, unknown to the fitted recommenders: its embedding finds it neighbours.
    merch_client.post("/api/recommend/items/", {"external_id": "k9", "title": "Green ceramic mug",
                                                "category": "Kitchen"})
    cold = merch_client.get("/api/recommend/items/k9/similar/", {"k": 2}).json()["results"]
    assert cold and cold[0]["reason"] == "Similar to Green ceramic mug"
    assert "mug" in cold[0]["item"]["title"].lower()


@pytest.mark.parametrize("k", [0, 101, "many"])
def test_k_out_of_range_is_a_clear_400(merch_client, k):
    response = merch_client.get("/api/recommend/users/c0/recommendations/", {"k": k})

    assert response.status_code == 400
    assert response.json()["error"]["details"]["k"]


def test_before_any_fit_the_api_says_so(merch_client):
    response = merch_client.get("/api/recommend/users/c0/recommendations/")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "recommender_not_ready"


def test_clicks_are_logged_once_per_impression(merch_client, shop_items):
    impression = recs(merch_client, "c0", k=1)["results"][0]["impression_id"]

    first = merch_client.post("/api/recommend/clicks/", {"impression_id": impression})
    second = merch_client.post("/api/recommend/clicks/", {"impression_id": impression})

    assert first.status_code == second.status_code == 200
    assert first.json()["clicked_at"] == second.json()["clicked_at"]
    assert merch_client.post("/api/recommend/clicks/",
                             {"impression_id": "00000000-0000-0000-0000-000000000000"}).status_code == 404


def test_a_new_fit_is_picked_up_by_readers(merch_client, shop_items):
    from apps.recommend.services.engine import engine_get, recommenders_fit

    before = engine_get().name
    Event.objects.create(event_id="late", user_key="c0", item=shop_items["g0"], kind="purchase",
                         ts=Event.objects.first().ts)
    recommenders_fit()

    assert engine_get().name != before
    assert engine_get().manifest["events"] == Event.objects.count()


def test_every_result_carries_the_score_it_is_ordered_by_and_its_shares(merch_client, shop_items):
    results = recs(merch_client, "c0", k=5)["results"]
    similar = merch_client.get("/api/recommend/items/k0/similar/", {"k": 5}).json()["results"]

    for rows in (results, similar):
        scores = [r["score"] for r in rows]
        assert scores == sorted(scores, reverse=True)
        assert all(r["contributions"] for r in rows)
        assert all(sum(r["contributions"].values()) == pytest.approx(r["score"], abs=1e-3) for r in rows)
    assert {name for r in similar for name in r["contributions"]} <= {"content", "cooccurrence"}


def test_the_api_stores_impressions_once_the_response_is_closed(make_user, shop_items):
    from rest_framework.test import APIRequestFactory, force_authenticate

    from apps.recommend.api import UserRecommendationsApi

    request = APIRequestFactory().get("/api/recommend/users/c0/recommendations/", {"k": 3})
    force_authenticate(request, user=make_user("merchandiser"))
    response = UserRecommendationsApi.as_view()(request, user_key="c0")
    ids = [r["impression_id"] for r in response.data["results"]]

    assert response.status_code == 200 and len(ids) == 3
    assert not Impression.objects.exists()  # not yet: the body goes out first
    _close(response)  # what the server does once the body is sent
    assert sorted(str(i) for i in Impression.objects.values_list("impression_id", flat=True)) == sorted(ids)
    _close(response)
    assert Impression.objects.count() == 3


def _close(response):
    """``response.close()`` as the test client calls it: the test's database connection stays open."""
    from django.core.signals import request_finished
    from django.db import close_old_connections

    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def test_impressions_left_for_later_are_stored_once(shop_items):
    from apps.recommend.services.recommendations import impressions_save, recommendation_list

    result = recommendation_list(user_key="c0", k=3, log_later=True)

    assert not Impression.objects.exists() and all(r.impression_id for r in result.results)
    assert impressions_save(result) == 3 and impressions_save(result) == 0
    assert Impression.objects.filter(user_key="c0", surface="user").count() == 3
    assert recommendation_list(user_key="c0", k=2, log=False).unsaved == []


def test_the_fast_answer_builders_give_what_the_documented_serializers_give(shop_items):
    from apps.recommend import serializers as s
    from apps.recommend.services.recommendations import recommendation_list, similar_list

    Item.objects.filter(external_id="k3").update(attributes={"colour": "blue", "size": [1, 2]}, price=None)
    lists = [recommendation_list(user_key="c0", k=6), recommendation_list(session_key="anon", k=3, log=False),
             similar_list(item=shop_items["k0"], k=5)]

    for result in lists:
        assert s.recommendation_list_data(result) == s.RecommendationListOutputSerializer(result).data
        assert s.widget_list_data(result) == s.WidgetOutputSerializer(result).data
    shown = [r.item for result in lists for r in result.results]
    assert any(i.embedded_at for i in shown) and any(i.price is None for i in shown) and any(i.price for i in shown)


def test_a_list_is_filled_past_many_candidates_that_became_unavailable(merch_client, shop_items):
    first = [r["item"]["external_id"] for r in recs(merch_client, "c0", k=8)["results"]]
    Item.objects.filter(external_id__in=first[:5]).update(available=False)  # more than 2 x k of the best

    again = [r["item"]["external_id"] for r in recs(merch_client, "c0", k=2)["results"]]

    assert len(again) == 2 and not set(first[:5]) & set(again)


def test_contributions_are_labelled_largest_first():
    from apps.recommend.services.recommendations import Recommended

    def shown(**shares):
        return Recommended(item=Item(external_id="x", title="X"), score=sum(shares.values()), reason="",
                           reason_kind="popular", contributions=shares).contributions_text

    assert shown(cooccurrence=0.2, content=0.41, trending=0.001) == "content 0.41 · co-occurrence 0.20"
    assert shown(als=0.5, popularity=0.5) == "ALS 0.50 · popularity 0.50"
    assert shown(content=0.0) == "content 0.00"
    assert shown() == ""
