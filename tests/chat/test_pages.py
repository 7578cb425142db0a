"""Dashboard pages: search with highlighted snippets, safe article view, preview, delete, import."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.chat.models import Article
from apps.chat.services.articles import article_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent_page(client, make_user):
    client.force_login(make_user("agent"))
    return client


def test_search_box_shows_results_with_highlighted_snippets(agent_page):
    article_create(values={"title": "Garden hose", "body": "The garden hose is <b>green</b>.", "published": True})
    html = agent_page.get("/kb/", {"q": "garden hose"}).content.decode()
    assert 'id="kb-results"' in html and "Garden hose" in html
    assert "<mark>garden</mark> <mark>hose</mark>" in html and "&lt;b&gt;green&lt;/b&gt;" in html


def test_article_page_renders_markdown_safely(agent_page):
    article = article_create(
        values={"title": "T", "body": "**bold** <script>alert(1)</script> [x](javascript:alert(2))"}
    )
    html = agent_page.get(f"/kb/articles/{article.pk}/").content.decode()
    assert "<strong>bold</strong>" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert 'href="javascript' not in html  # the link is dropped; its text stays


def test_preview_renders_without_saving_and_save_creates(agent_page):
    data = {"title": "New", "body": "# Heading\n\n<img src=x onerror=alert(1)>", "tags": "a, b", "preview": "1"}
    html = agent_page.post("/kb/articles/new/", data).content.decode()
    assert 'id="kb-preview"' in html and "<h1>Heading</h1>" in html and "<img" not in html.split("kb-preview")[1]
    assert not Article.objects.exists()
    data.pop("preview")
    response = agent_page.post("/kb/articles/new/", {**data, "save": "1"})
    article = Article.objects.get()
    assert response.status_code == 302 and article.tags == ["a", "b"]


def test_delete_asks_then_deletes(agent_page):
    article = article_create(values={"title": "Doomed", "body": "x"})
    assert "Delete “Doomed”?" in agent_page.get(f"/kb/articles/{article.pk}/delete/").content.decode()
    assert agent_page.post(f"/kb/articles/{article.pk}/delete/").status_code == 302
    assert not Article.objects.exists()


def test_import_page_shows_the_report_by_line(agent_page):
    upload = SimpleUploadedFile("faq.csv", b"title,body\nRefunds,Five days.\nBroken\n")
    response = agent_page.post("/kb/imports/", {"files": [upload]}, follow=True)
    html = response.content.decode()
    assert 'id="import-report"' in html and "line 3" in html and "expected 2 fields" in html


def test_nav_link_for_agents_only(client, make_user):
    client.force_login(make_user("agent"))
    assert "Knowledge base" in client.get("/models/").content.decode()
    client.force_login(make_user("analyst"))
    assert "Knowledge base" not in client.get("/models/").content.decode()
