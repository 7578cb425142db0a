"""The knowledge base in headless Chromium: a search on the KB page shows a result, no console errors."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.recommend.conftest import WordHashEmbedder

pytestmark = pytest.mark.e2e
PASSWORD = "pw-for-tests-123"


@pytest.fixture
def kb_articles(settings, tmp_path, monkeypatch):
    from apps.chat.services import background, index
    from apps.chat.services.articles import article_create

    settings.TRELLIS_KB_DIR = tmp_path / "kb"
    monkeypatch.setattr(background, "RUN_INLINE", True)
    monkeypatch.setattr(index, "_embedder", WordHashEmbedder)
    index.kb_index_cache.reset()
    article_create(values={"title": "Returns policy", "body": "Gold members get unlimited returns.", "published": True})
    article_create(values={"title": "Shipping", "body": "Parcels ship within two days.", "published": True})
    yield
    index.kb_index_cache.reset()


def test_search_on_the_kb_page_shows_a_result(page: Page, live_server, make_user, kb_articles):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    make_user("agent", username="kb-agent")
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill("kb-agent")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("link", name="Knowledge base", exact=True).click()
    page.get_by_label("Search the articles").fill("unlimited returns for gold members")
    page.get_by_role("button", name="Search").click()

    first = page.locator("#kb-results .kb-result").first
    expect(first.get_by_role("link")).to_have_text("Returns policy")
    expect(first.locator("mark").first).to_be_visible()
    first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Returns policy")).to_be_visible()
    assert errors == []
