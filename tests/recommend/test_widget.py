"""The widget's endpoints: a public key, listed origins only (CORS), signed users only."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.recommend.models import Impression
from apps.recommend.services.widget import user_signature, widget_key_create
from tests.recommend.factories import fitted_shop

pytestmark = pytest.mark.django_db

SHOP = "http://shop.example:8080"


@pytest.fixture
def key():
    fitted_shop()
    return widget_key_create(name="shop", allowed_origins=[SHOP + "/"], user=None)


def widget(key, origin=SHOP, **query):
    return Client().get("/api/recommend/widget/recommendations/", {"key": key.public_key, **query},
                        HTTP_ORIGIN=origin)


def test_a_listed_origin_gets_recommendations_with_cors_headers(key):
    response = widget(key, session="s-1", k=3)

    assert response.status_code == 200, response.content
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert "Access-Control-Allow-Credentials" not in response
    rows = response.json()["results"]
    assert len(rows) == 3 and all(r["reason"] and r["impression_id"] for r in rows)
    assert Impression.objects.filter(surface="widget").count() == 3


def test_other_origins_and_unknown_keys_are_refused(key):
    other = widget(key, origin="http://evil.example")
    unknown = Client().get("/api/recommend/widget/recommendations/", {"key": "wk_nope"}, HTTP_ORIGIN=SHOP)

    assert other.status_code == 403 and "Access-Control-Allow-Origin" not in other
    assert unknown.status_code == 403 and unknown.json()["error"]["code"] == "widget_key_refused"


def test_cors_is_limited_to_the_widget_routes(key):
    response = Client().get("/api/recommend/items/", HTTP_ORIGIN=SHOP)

    assert "Access-Control-Allow-Origin" not in response


def test_a_user_id_without_its_signature_gets_no_personal_list(key):
    anonymous = widget(key, user="c0", session="s-2", k=5).json()["results"]
    signed = widget(key, user="c0", signature=user_signature(key, "c0"), session="s-2", k=5).json()["results"]

    assert {r["reason"] for r in anonymous} <= {"Popular", "Trending now"}
    assert any(r["reason"].startswith(("Because you bought", "Often bought with", "Similar to")) for r in signed)
    assert not {"k0", "k1", "k2"} & {r["external_id"] for r in signed}  # c0's purchases


def test_widget_clicks(key):
    impression = widget(key, session="s-3", k=1).json()["results"][0]["impression_id"]
    client = Client()

    preflight = client.options("/api/recommend/widget/clicks/", HTTP_ORIGIN=SHOP,
                               HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                               HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type")
    click = client.post("/api/recommend/widget/clicks/", {"key": key.public_key, "impression_id": impression},
                        content_type="application/json", HTTP_ORIGIN=SHOP)

    assert preflight["Access-Control-Allow-Origin"] == SHOP
    assert click.status_code == 204
    assert Impression.objects.get(impression_id=impression).clicked_at is not None


def test_origins_must_be_origins():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        widget_key_create(name="x", allowed_origins=["javascript:alert(1)"], user=None)
    with pytest.raises(ValidationError):
        widget_key_create(name="x", allowed_origins=["https://shop.example/path"], user=None)
