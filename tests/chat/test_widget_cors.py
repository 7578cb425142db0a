"""CORS for the widget: the start and read endpoints answer pages on a route's allowed origins,
and nothing else opens (other origins, other paths, inactive routes, the recommend widget's origins)."""

from __future__ import annotations

import pytest

from apps.chat.models import WidgetRoute

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example.com"
EVIL = "https://evil.example.com"
ACAO = "Access-Control-Allow-Origin"


@pytest.fixture(autouse=True)
def _fresh_origins():
    from apps.chat.services.routes import cors_origins_reset

    cors_origins_reset()  # a route of an earlier test, rolled back, must not linger in the cache
    yield
    cors_origins_reset()


@pytest.fixture
def route():
    return WidgetRoute.objects.create(key="shop", name="Shop", allowed_origins=[SHOP])


def _preflight(client, path, origin):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type,x-conversation-token",
    )


def test_preflight_from_an_allowed_origin_allows_the_token_header(client, route):
    response = _preflight(client, "/api/chat/conversations/", SHOP)
    assert response.status_code == 200
    assert response[ACAO] == SHOP
    assert "x-conversation-token" in response["Access-Control-Allow-Headers"]
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response  # the widget sends no cookies


def test_start_from_an_allowed_origin_is_readable_by_that_page(client, route):
    response = client.post(
        "/api/chat/conversations/", {"route": "shop"}, content_type="application/json", HTTP_ORIGIN=SHOP
    )
    assert response.status_code == 201, response.content
    assert response[ACAO] == SHOP
    body = response.json()
    read = client.get(
        f"/api/chat/conversations/{body['id']}/", HTTP_ORIGIN=SHOP, HTTP_X_CONVERSATION_TOKEN=body["token"]
    )
    assert read.status_code == 200 and read[ACAO] == SHOP


def test_other_origins_get_no_cors_headers_and_no_conversation(client, route):
    assert ACAO not in _preflight(client, "/api/chat/conversations/", EVIL)
    response = client.post(
        "/api/chat/conversations/", {"route": "shop"}, content_type="application/json", HTTP_ORIGIN=EVIL
    )
    assert ACAO not in response
    assert response.status_code == 403
    assert not route.conversations.exists()


def test_only_the_widget_paths_open_to_route_origins(client, route, make_user):
    for path in (
        "/api/chat/kb/articles/",
        "/api/chat/messages/1/feedback/",
        "/api/recommend/widget/recommendations/",
        "/chat/routes/",
        "/healthz",
    ):
        assert ACAO not in _preflight(client, path, SHOP), path


def test_an_inactive_route_opens_nothing(client, route):
    route.active = False
    route.save()
    assert ACAO not in _preflight(client, "/api/chat/conversations/", SHOP)


def test_a_recommend_widget_origin_does_not_open_the_chat(client, route):
    from apps.recommend.services.widget import widget_key_create

    widget_key_create(name="recs", allowed_origins=[EVIL], user=None)
    assert _preflight(client, "/api/recommend/widget/recommendations/", EVIL)[ACAO] == EVIL
    assert ACAO not in _preflight(client, "/api/chat/conversations/", EVIL)


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_origin_check_runs_off_the_event_loop(monkeypatch):
    # given the async middleware chain (django-cors-headers sends its signal on the loop),
    # with Django's guard against the ORM on the event loop switched on
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)
    WidgetRoute.objects.create(key="shop", name="Shop", allowed_origins=[SHOP])

    async def preflights():
        client = AsyncClient()
        asked = {"Access-Control-Request-Method": "POST"}
        allowed = await client.options("/api/chat/conversations/", headers={"Origin": SHOP, **asked})
        refused = await client.options("/api/chat/conversations/", headers={"Origin": EVIL, **asked})
        return allowed, refused

    # when a page of the route asks, and a foreign page asks
    allowed, refused = async_to_sync(preflights)()
    # then the first gets its CORS answer and the second none (no SynchronousOnlyOperation)
    assert allowed.status_code == 200 and allowed[ACAO] == SHOP
    assert ACAO not in refused


def test_a_route_saved_in_this_process_counts_at_once(client, route):
    assert ACAO not in _preflight(client, "/api/chat/conversations/", EVIL)  # cached now
    route.allowed_origins = [SHOP, EVIL]
    route.save()
    assert _preflight(client, "/api/chat/conversations/", EVIL)[ACAO] == EVIL
