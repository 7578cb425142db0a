"""Recommendations in headless Chromium: the item explorer, and the widget on another origin."""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.recommend.conftest import WordHashEmbedder
from tests.recommend.factories import fitted_shop, recommend_isolate

pytestmark = pytest.mark.e2e

PASSWORD = "pw-for-tests-123"


@pytest.fixture
def shop_items(settings, tmp_path, monkeypatch):
    """The generated shop, indexed and fitted with the word-hash embedder (no model load)."""
    from apps.recommend.services import background, index

    recommend_isolate(settings, tmp_path)
    monkeypatch.setattr(background, "RUN_INLINE", True)
    monkeypatch.setattr(index, "_embedder", WordHashEmbedder)
    return fitted_shop()


@pytest.fixture
def shop_site(tmp_path) -> Iterator[tuple[str, Path]]:
    """A static web server on another port: another origin than the live server."""
    root = tmp_path / "shop"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_item_explorer_shows_similar_items(page: Page, live_server, make_user, shop_items):
    make_user("merchandiser", username="merch")
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill("merch")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto(live_server.url + "/recommend/")
    page.get_by_role("link", name="Red Ceramic Mug").click()

    expect(page.get_by_role("heading", name="Red Ceramic Mug")).to_be_visible()
    rows = page.locator("#similar-items tr.recommendation")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 3
    expect(rows.first.locator(".reason")).to_have_text(
        re.compile(r"^(Similar to|Often bought with) Red Ceramic Mug$"))
    # The list is ordered by the score it shows; each score's shares are labelled beneath it.
    expect(page.locator("#similar-items th", has_text="Blended score")).to_be_visible()
    scores = [float(text) for text in rows.locator(".score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    expect(rows.first.locator(".contributions")).to_have_text(
        re.compile(r"^(content|co-occurrence) \d\.\d\d( · (content|co-occurrence) \d\.\d\d)?$"))


def test_widget_on_a_page_from_another_origin_shows_recommendations(page: Page, live_server, shop_items, shop_site):
    from apps.recommend.models import Impression
    from apps.recommend.services.widget import user_signature, widget_key_create

    origin, root = shop_site
    key = widget_key_create(name="shop", allowed_origins=[origin], user=None)
    (root / "index.html").write_text(
        "<!doctype html><html><head><meta charset=utf-8><title>Shop</title></head><body>"
        "<h1>A shop</h1><div id=recs></div>"
        f'<script src="{live_server.url}/static/recommend/widget.js" data-key="{key.public_key}" data-target=recs '
        f'data-user=c0 data-user-signature="{user_signature(key, "c0")}" data-k=4 data-link="/p/{{id}}" defer>'
        "</script></body></html>")

    page.goto(origin + "/index.html")

    items = page.locator("#recs li.trellis-rec")
    expect(items).to_have_count(4)
    expect(page.locator("#recs h3")).to_have_text("Recommended for you")
    expect(items.first.locator(".trellis-rec-reason")).not_to_be_empty()
    # Impressions are stored once the response has been sent: that can trail the render a little.
    deadline = time.monotonic() + 10
    while Impression.objects.filter(surface="widget", user_key="c0").count() < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Impression.objects.filter(surface="widget", user_key="c0").count() == 4
    # c0 bought k0-k2: a personal (signed) list never repeats them.
    hrefs = [items.nth(n).locator("a").get_attribute("href") for n in range(4)]
    assert not {"/p/k0", "/p/k1", "/p/k2"} & set(hrefs)
