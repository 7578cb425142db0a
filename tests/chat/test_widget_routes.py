"""Widget routes: origin validation, the routes pages (admins only), the public shop and help pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.chat.models import Article, WidgetRoute
from apps.chat.services.routes import (
    cors_origin_allowed,
    cors_origins_reset,
    demo_route_ensure,
    embed_snippet,
    origin_normalise,
    origins_parse,
    route_origin_allowed,
)


@pytest.fixture(autouse=True)
def _fresh_origins():
    cors_origins_reset()
    yield
    cors_origins_reset()


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("https://shop.example.com", "https://shop.example.com"),
        ("HTTPS://Shop.Example.COM:443", "https://shop.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost:80", "http://localhost"),
        ("  https://a-b.example.org:8443 ", "https://a-b.example.org:8443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_origin_normalise_accepts_scheme_host_port(given, normalised):
    assert origin_normalise(given) == normalised


@pytest.mark.parametrize(
    "bad",
    [
        "shop.example.com",  # no scheme
        "ftp://shop.example.com",
        "https://shop.example.com/",  # a path, even "/"
        "https://shop.example.com/help",
        "https://shop.example.com?x=1",
        "https://user:pw@shop.example.com",
        "https://*.example.com",
        "https://",
        "https://shop.example.com:99999",
        "null",
    ],
)
def test_origin_normalise_refuses_anything_else(bad):
    with pytest.raises(ValidationError):
        origin_normalise(bad)


def test_origins_parse_names_each_bad_line_and_drops_duplicates():
    assert origins_parse("https://a.example\n\nHTTPS://A.example\nhttp://b.example:81\n") == [
        "https://a.example",
        "http://b.example:81",
    ]
    with pytest.raises(ValidationError) as caught:
        origins_parse("https://ok.example\nhttps://bad.example/path\nnot an origin")
    assert [m.split(":")[0] for m in caught.value.messages] == ["line 2", "line 3"]


@pytest.mark.django_db
def test_route_origin_allowed_only_for_listed_origins_of_active_routes():
    route = WidgetRoute.objects.create(key="shop", name="Shop", allowed_origins=["https://shop.example.com"])
    assert route_origin_allowed(route, "https://shop.example.com")
    assert route_origin_allowed(route, "https://shop.example.com:443")  # the same origin, spelled out
    assert not route_origin_allowed(route, "https://evil.example.com")
    assert not route_origin_allowed(route, "null")
    assert not route_origin_allowed(None, "https://shop.example.com")
    assert cors_origin_allowed("https://shop.example.com")
    route.active = False
    route.save()
    assert not route_origin_allowed(route, "https://shop.example.com")
    assert not cors_origin_allowed("https://shop.example.com")


@pytest.mark.django_db
def test_demo_route_is_created_once_and_keeps_an_admins_edits():
    first = demo_route_ensure(origins=["http://127.0.0.1:8000", "http://localhost:8000"])
    assert first.created and first.route.allowed_origins == ["http://127.0.0.1:8000", "http://localhost:8000"]
    WidgetRoute.objects.filter(pk=first.route.pk).update(title="My shop", allowed_origins=["https://mine.example"])
    again = demo_route_ensure(origins=["http://127.0.0.1:8000"])
    assert not again.created and again.origins_added == ["http://127.0.0.1:8000"]
    route = WidgetRoute.objects.get(key="demo")
    assert route.title == "My shop" and route.allowed_origins == ["https://mine.example", "http://127.0.0.1:8000"]
    assert demo_route_ensure(origins=["http://127.0.0.1:8000"]).origins_added == []
    assert WidgetRoute.objects.count() == 1


def _login(client, make_user, role, username):
    client.force_login(make_user(role, username=username))


def _form(**overrides):
    values = {
        "key": "shop",
        "name": "Our shop",
        "allowed_origins": "https://Shop.Example.com\nhttp://localhost:3000",
        "title": "Help",
        "greeting": "Hello!",
        "brand_colour": "#AA3300",
        "handoff_intents": "complaint, cancel_order",
        "active": "on",
    }
    return {**values, **overrides}


@pytest.mark.django_db
def test_routes_page_is_for_admins_only(client, make_user):
    assert client.get("/chat/routes/").status_code == 302  # to the login page
    _login(client, make_user, "agent", "agent1")
    assert client.get("/chat/routes/").status_code == 403
    assert client.post("/chat/routes/", _form()).status_code == 403
    assert not WidgetRoute.objects.exists()


@pytest.mark.django_db
def test_admin_creates_a_route_and_gets_its_snippet(client, make_user):
    _login(client, make_user, "admin", "boss")
    response = client.post("/chat/routes/", _form())
    route = WidgetRoute.objects.get(key="shop")
    assert response.status_code == 302 and response["Location"] == f"/chat/routes/{route.pk}/"
    assert route.allowed_origins == ["https://shop.example.com", "http://localhost:3000"]
    assert route.brand_colour == "#aa3300" and route.handoff_intents == ["complaint", "cancel_order"]
    event = AuditEvent.objects.get(action="widget_route.update")
    assert event.actor.username == "boss" and event.details["allowed_origins"] == route.allowed_origins
    page = client.get(f"/chat/routes/{route.pk}/").content.decode()
    assert "http://testserver/static/chat/widget.js" in page and "data-route=&quot;shop&quot;" in page
    assert embed_snippet(route, base_url="https://t.example/") == (
        '<script src="https://t.example/static/chat/widget.js" data-route="shop" defer></script>'
    )


@pytest.mark.django_db
def test_bad_input_is_shown_on_the_form_and_changes_nothing(client, make_user):
    _login(client, make_user, "admin", "boss")
    client.post("/chat/routes/", _form())
    route = WidgetRoute.objects.get(key="shop")
    response = client.post(
        f"/chat/routes/{route.pk}/",
        _form(allowed_origins="https://ok.example\nhttps://bad.example/x", brand_colour="red"),
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert "line 2" in str(form.errors) or "colour" in str(form.errors)
    route.refresh_from_db()
    assert route.allowed_origins == ["https://shop.example.com", "http://localhost:3000"]
    assert route.brand_colour == "#aa3300"
    # origins alone: the error names the line
    response = client.post(f"/chat/routes/{route.pk}/", _form(allowed_origins="https://ok.example\nftp://x.example"))
    assert "line 2" in str(response.context["form"].errors["allowed_origins"])
    # a key that exists already
    response = client.post("/chat/routes/", _form(name="again"))
    assert response.status_code == 200 and "key" in response.context["form"].errors
    assert WidgetRoute.objects.count() == 1


@pytest.mark.django_db
def test_an_edit_is_audited_with_what_changed(client, make_user):
    _login(client, make_user, "admin", "boss")
    client.post("/chat/routes/", _form())
    route = WidgetRoute.objects.get(key="shop")
    client.post(f"/chat/routes/{route.pk}/", _form(allowed_origins="https://shop.example.com", active=""))
    route.refresh_from_db()
    assert route.allowed_origins == ["https://shop.example.com"] and route.active is False
    event = AuditEvent.objects.filter(action="widget_route.update").order_by("-id").first()
    assert set(event.details) == {"allowed_origins", "active"}
    assert event.details["allowed_origins"]["to"] == ["https://shop.example.com"]


@pytest.mark.django_db
def test_shop_page_is_public_and_embeds_the_widget_by_its_script_tag_only(client):
    response = client.get("/chat/shop/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<script src="/static/chat/widget.js" data-route="demo" defer></script>' in html
    assert html.count("<script") == 1 and "style=" not in html and "onclick" not in html
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_widget_js_is_served_and_never_writes_html(client):
    response = client.get("/static/chat/widget.js")
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
    source = Path(finders.find("chat/widget.js")).read_text(encoding="utf-8")  # what was served
    assert "attachShadow" in source and "/api/chat/conversations/" in source
    assert "innerHTML" not in source and "insertAdjacentHTML" not in source and "eval(" not in source


@pytest.mark.django_db
def test_help_article_page_shows_published_articles_only(client):
    public = Article.objects.create(title="Returns", body="Return within **30 days**.", published=True)
    draft = Article.objects.create(title="Secret draft", body="not yet", published=False)
    response = client.get(f"/chat/help/{public.pk}/")
    assert response.status_code == 200 and b"<strong>30 days</strong>" in response.content
    assert client.get(f"/chat/help/{draft.pk}/").status_code == 404
    assert client.get("/chat/help/999999/").status_code == 404


@pytest.mark.django_db
def test_the_admin_validates_origins_as_the_routes_page_does(client, make_user):
    user = make_user("admin", username="root")
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    values = {
        "key": "adm",
        "name": "Admin-made",
        "title": "Help",
        "greeting": "Hi",
        "brand_colour": "#112233",
        "handoff_intents": "[]",
        "active": "on",
    }
    response = client.post("/admin/chat/widgetroute/add/", {**values, "allowed_origins": '["https://x.example/path"]'})
    assert response.status_code == 200 and not WidgetRoute.objects.exists()
    assert "line 1" in str(response.context["adminform"].form.errors["allowed_origins"])
    response = client.post("/admin/chat/widgetroute/add/", {**values, "allowed_origins": '["HTTPS://X.example:443"]'})
    assert response.status_code == 302
    assert WidgetRoute.objects.get(key="adm").allowed_origins == ["https://x.example"]
    assert AuditEvent.objects.filter(action="widget_route.update", actor=user).exists()
