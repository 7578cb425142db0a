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
