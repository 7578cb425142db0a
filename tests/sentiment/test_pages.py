"""The analyst dashboard's pages: analysts (and admins) only; what each page shows and does.

Documents come through the real pipeline (keyword model), so the pages show real scores,
mentions, series buckets and alerts.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.mlops.models import ModelVersion
from apps.sentiment.models import Alert, AlertRule, Document, Entity, Price, Source, Watchlist
from tests.sentiment.conftest import T0
from tests.sentiment.fixtures_alerts import BEARISH, BULLISH, deliver_inline, make_rule, score, texts

__all__ = ["deliver_inline", "make_rule", "score"]

pytestmark = pytest.mark.django_db
HOUR = timedelta(hours=1)


@pytest.fixture
def analyst(make_user) -> Client:
    client = Client()
    client.force_login(make_user("analyst"))
    return client


@pytest.fixture
def world(score, make_rule) -> dict:
    """Bearish then bullish AAPL news over two days, a rule that fired, prices of both days."""
    rule = make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3)
    score(texts(BEARISH, "AAPL", [T0, T0 + HOUR / 6]) + texts(BULLISH, "AAPL", [T0 + 24 * HOUR]))
    aapl = Entity.objects.get(symbol="AAPL")
    Price.objects.create(entity=aapl, date=T0.date(), close=100.0)
    Price.objects.create(entity=aapl, date=(T0 + 24 * HOUR).date(), close=103.0)
    return {"rule": rule, "alert": Alert.objects.get(), "document": Document.objects.order_by("pk").first()}


def pages(world: dict) -> list[str]:
    return [
        "/sentiment/",
        "/sentiment/entities/AAPL/",
        f"/sentiment/documents/{world['document'].pk}/",
        "/sentiment/alerts/",
        f"/sentiment/alerts/{world['alert'].pk}/",
        "/sentiment/rules/",
        f"/sentiment/rules/{world['rule'].pk}/",
        "/sentiment/corrections/",
        "/sentiment/backtests/",
        "/sentiment/sources/",
        "/sentiment/watchlists/",
        f"/sentiment/watchlists/{Watchlist.objects.get().pk}/",
        "/sentiment/watchlists/entities/AAPL/",
    ]


def test_every_page_is_for_analysts_and_admins_only(world, make_user):
    urls = pages(world)
    for roles, expected in (
        (("analyst",), 200),
        (("admin",), 200),
        (("merchandiser",), 403),
        (("agent",), 403),
        ((), 403),
    ):
        client = Client()
        client.force_login(make_user(*roles))
        assert {url: client.get(url).status_code for url in urls} == dict.fromkeys(urls, expected), roles
    anonymous = Client()
    for url in urls:
        response = anonymous.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_the_nav_shows_sentiment_to_analysts_only(make_user):
    for roles, shown in ((("analyst",), True), (("admin",), True), (("merchandiser",), False)):
        client = Client()
        client.force_login(make_user(*roles))
        assert ('href="/sentiment/"' in client.get("/models/").content.decode()) is shown


def test_overview_shows_the_feed_with_mentions_the_watchlist_and_open_alerts(analyst, world):
    html = analyst.get("/sentiment/").content.decode()
    assert 'id="open-alerts">1<' in html
    assert world["alert"].message in html
    assert html.count('class="doc-card') == 3
    assert '<a class="mention" href="/sentiment/entities/AAPL/" title="AAPL">$AAPL</a>' in html
    assert 'data-ws="/ws/sentiment/live/"' in html
    assert re.search(r'<svg class="spark"[^>]*>.*<polyline points="[\d., ]+"', html)  # AAPL has two days


def test_the_zero_shot_default_gets_the_chance_level_banner(analyst, world):
    assert "Chance level: train a model." in analyst.get("/sentiment/").content.decode()
    ModelVersion.objects.create(
        role="sentiment",
        version="sent-fewshot-1",
        kind="fewshot-classifier",
        artifact_path="/nowhere",
        status="active",
        metrics={"valid_weighted_f1": 0.74},
    )
    html = analyst.get("/sentiment/").content.decode()
    assert "Chance level" not in html
    assert "sent-fewshot-1" in html and "weighted F1 0.740 on the validation split" in html


def test_entity_page_charts_mean_volume_and_close_and_switches_width(analyst, world):
    response = analyst.get("/sentiment/entities/aapl/?width=86400")
    chart = json.loads(
        re.search(r'id="entity-chart-data" type="application/json">(.*?)</script>', response.content.decode()).group(1)
    )
    assert chart["width"] == 86400 and chart["basis"] == "live"
    assert chart["labels"][-2:] == [T0.strftime("%Y-%m-%d"), (T0 + 24 * HOUR).strftime("%Y-%m-%d")]
    assert chart["volume"][-2:] == [2, 1]
    assert chart["mean"][-2:] == [pytest.approx(-0.7), pytest.approx(0.7)]
    assert chart["close"][-2:] == [100.0, 103.0] and chart["has_price"]
    hourly = analyst.get("/sentiment/entities/AAPL/")
    assert '<canvas id="entity-chart"' in hourly.content.decode()
    assert analyst.get("/sentiment/entities/NOPE/").status_code == 404


def test_document_text_is_escaped_and_mentions_highlighted(analyst, score, watchlist):
    score([("<script>alert(1)</script> $MSFT slumps on weak guidance", T0)])
    document = Document.objects.get()
    html = analyst.get(f"/sentiment/documents/{document.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<a class="mention" href="/sentiment/entities/MSFT/" title="MSFT">$MSFT</a>' in html
    assert "fake-keyword-1" in html and 'data-explain-url="/api/sentiment/documents/' in html


def test_inbox_acknowledge_and_resolve(analyst, world):
    alert = world["alert"]
    inbox = analyst.get("/sentiment/alerts/").content.decode()
    assert f'data-alert="{alert.pk}"' in inbox and "Acknowledge" in inbox
    assert len(re.findall(r"<li><a href=\"/sentiment/documents/", inbox)) == 2  # its documents
    response = analyst.post(f"/sentiment/alerts/{alert.pk}/acknowledge/", {"next": "/sentiment/alerts/"})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.acknowledged_by.username.startswith("analyst")
    assert f'data-alert="{alert.pk}"' not in analyst.get("/sentiment/alerts/").content.decode()  # open only
    analyst.post(f"/sentiment/alerts/{alert.pk}/resolve/")
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert f'data-alert="{alert.pk}"' in analyst.get("/sentiment/alerts/?status=resolved").content.decode()


def test_rules_form_validates_creates_edits_and_deletes(analyst, watchlist):
    aapl, tech = Entity.objects.get(symbol="AAPL"), Watchlist.objects.get()
    base = {
        "name": "AAPL drop",
        "condition": "level_below",
        "threshold": "-0.4",
        "width_s": "3600",
        "window": "2",
        "baseline": "24",
        "min_volume": "3",
        "cooldown_s": "3600",
        "enabled": "on",
    }
    both = analyst.post("/sentiment/rules/", {**base, "entity": aapl.pk, "watchlist": tech.pk})
    assert both.status_code == 400 and "one of them, not both" in both.content.decode()
    bad = analyst.post("/sentiment/rules/", {**base, "entity": aapl.pk, "threshold": "-3"})
    assert bad.status_code == 400 and "threshold must be a number in [-1.0, 1.0]" in bad.content.decode()
    created = analyst.post(
        "/sentiment/rules/",
        {**base, "entity": aapl.pk, "webhook_url": "https://hooks.example/x", "notify_email": "ana@example.com"},
    )
    assert created.status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.threshold, rule.window, rule.entity, rule.created_by.username[:7]) == (-0.4, 2, aapl, "analyst")
    assert len(rule.webhook_secret) >= 40  # generated, shown on the rule's page
    assert rule.webhook_secret in analyst.get(f"/sentiment/rules/{rule.pk}/").content.decode()
    edited = analyst.post(f"/sentiment/rules/{rule.pk}/", {**base, "watchlist": tech.pk, "threshold": "-0.2"})
    assert edited.status_code == 302
    rule.refresh_from_db()
    assert (rule.entity, rule.watchlist, rule.threshold) == (None, tech, -0.2)
    assert analyst.post(f"/sentiment/rules/{rule.pk}/delete/").status_code == 302
    assert not AlertRule.objects.exists()


def test_sources_page_adds_a_feed_and_reports_an_upload_line_by_line(analyst, watchlist, monkeypatch):
    from apps.sentiment.services import background

    monkeypatch.setattr(background, "RUN_INLINE", False)  # the first poll is queued, not run (no network here)
    response = analyst.post(
        "/sentiment/sources/",
        {"name": "Wire", "url": "https://feeds.example/rss", "poll_interval_s": "300"},
        follow=False,
    )
    assert response.status_code == 302 and Source.objects.filter(name="Wire", kind="feed").exists()
    upload = SimpleUploadedFile(
        "news.csv",
        b"text,published_at\n$AAPL beats estimates,2025-03-03T09:00:00Z\n"
        b",2025-03-03T10:00:00Z\n$MSFT rises,not a date\n",
        content_type="text/csv",
    )
    html = analyst.post("/sentiment/sources/upload/", {"file": upload}).content.decode()
    assert 'id="upload-report"' in html
    assert re.search(r"<strong>1</strong> new document", html)
    assert re.search(r"<tr><td>3</td><td class=\"error\">", html) and re.search(r"<tr><td>4</td>", html)
    sources = analyst.get("/sentiment/sources/").content.decode()
    assert "Wire" in sources and "https://feeds.example/rss" in sources


def test_watchlist_page_adds_an_entity_and_edits_its_aliases(analyst, watchlist):
    response = analyst.post(
        "/sentiment/watchlists/",
        {
            "entity": "1",
            "symbol": "nvda",
            "name": "NVIDIA Corporation",
            "aliases": "Nvidia\nGeForce maker",
            "exchange": "nasdaq",
            "active": "on",
        },
    )
    assert response.status_code == 302
    nvda = Entity.objects.get(symbol="NVDA")
    assert nvda.aliases == ["Nvidia", "GeForce maker"] and nvda.exchange == "NASDAQ"
    clash = analyst.post("/sentiment/watchlists/", {"entity": "1", "symbol": "AAPL", "name": "Apple again"})
    assert clash.status_code == 400 and "already on the watchlist" in clash.content.decode()
    edited = analyst.post(
        "/sentiment/watchlists/entities/NVDA/",
        {"name": "NVIDIA Corporation", "aliases": "Nvidia", "exchange": "NASDAQ", "active": "on"},
    )
    assert edited.status_code == 302
    nvda.refresh_from_db()
    assert nvda.aliases == ["Nvidia"]
    made = analyst.post("/sentiment/watchlists/", {"watchlist": "1", "name": "Chips", "symbols": "NVDA, AAPL"})
    assert made.status_code == 302
    assert sorted(Watchlist.objects.get(name="Chips").entities.values_list("symbol", flat=True)) == ["AAPL", "NVDA"]
