"""The analyst dashboard in headless Chromium, served by a real uvicorn (as run_suite starts it):
the entity page draws its chart, and an alert fired while the inbox is open appears in it live,
without a reload, under the Content-Security-Policy.

The scores are committed by this test process (the scoring pipeline with the keyword model)
while the server runs in another process with the in-memory channel layer: the alert reaches
the page through the socket's database poll, as a Celery worker's alerts do in the embedded
default.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from apps.sentiment.models import Alert, AlertRule, Entity, Price
from tests.e2e.live import WATCH_VIOLATIONS, uvicorn_server
from tests.sentiment.conftest import T0, ingest, push_source, sentiment_env, watchlist
from tests.sentiment.fixtures_alerts import BEARISH, BULLISH, NEUTRAL, texts
from tests.servers import conftest as servers
from tests.servers.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.servers, pytest.mark.timeout(600), pytest.mark.django_db(transaction=True)]

start_process = servers.start_process  # the fixture that starts and always stops a child process
__all__ = ["ingest", "push_source", "sentiment_env", "watchlist"]  # the sentiment tests' fixtures

PASSWORD = "pw-for-tests-123"
SCREENSHOT = "/tmp/e2e-sentiment-entity.png"
HOUR = timedelta(hours=1)
@pytest.fixture
def server(start_process, tmp_path) -> Server:
    return uvicorn_server(start_process, tmp_path)


@pytest.fixture
def scored(sentiment_env, ingest, push_source, watchlist, monkeypatch):
    """``scored(rows)``: ingested and scored here (committed: the server sees them), deliveries inline."""
    from apps.sentiment.services import delivery

    monkeypatch.setattr(delivery, "RUN_INLINE", True)

    def run(rows):
        report = ingest(push_source, rows)
        assert report.created == len(rows)

    return run


def _log_in(page: Page, base_url: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.get_by_label("Username").fill("ana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Welcome, ana")).to_be_visible()


def test_entity_chart_and_a_live_alert_in_the_inbox(browser: Browser, server: Server, make_user, scored):
    make_user("analyst", username="ana", password=PASSWORD)
    aapl = Entity.objects.get(symbol="AAPL")
    # two days of AAPL news and prices (the chart's data), and a rule that has not fired
    scored(
        texts(BULLISH, "AAPL", [T0 + h * HOUR for h in range(0, 8, 2)])
        + texts(NEUTRAL, "AAPL", [T0 + 24 * HOUR + h * HOUR for h in range(0, 6, 2)])
    )
    for day, close in ((T0.date(), 101.0), ((T0 + 24 * HOUR).date(), 99.5)):
        Price.objects.create(entity=aapl, date=day, close=close)
    rule = AlertRule.objects.create(
        name="AAPL turns negative", entity=aapl, condition="level_below", threshold=-0.3, min_volume=2
    )

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    context.expose_function("reportViolation", lambda text: problems.append(f"CSP {text}"))
    context.add_init_script(WATCH_VIOLATIONS)
    try:
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and problems.append(f"console {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"error {e}"))
        _log_in(page, server.url)

        # the entity page: daily buckets, Chart.js draws mean, volume and close into the canvas
        page.goto(server.url + "/sentiment/entities/AAPL/?width=86400")
        expect(page.get_by_role("heading", name="AAPL Apple Inc.")).to_be_visible()
        canvas = page.locator("#entity-chart")
        expect(canvas).to_be_visible()
        page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('entity-chart'))")
        drawn = page.evaluate("""() => { const c = Chart.getChart(document.getElementById('entity-chart'));
            return {labels: c.data.labels.length, sets: c.data.datasets.map(d => d.label), h: c.height}; }""")
        assert drawn["sets"] == ["mean sentiment", "volume (mentions)", "close"] and drawn["labels"] >= 2
        assert drawn["h"] > 200
        page.screenshot(path=SCREENSHOT, full_page=True)
        # the width switch submits its form (no inline handler)
        page.get_by_label("1 hour").check()
        expect(page).to_have_url(f"{server.url}/sentiment/entities/AAPL/?width=3600&basis=live")

        # the inbox, live: no alert yet
        page.goto(server.url + "/sentiment/alerts/")
        expect(page.locator("#ws-state")).to_have_text("live")
        expect(page.locator("#open-alerts")).to_have_text("0")
        expect(page.locator("#alert-inbox tr.alert-row")).to_have_count(0)

        # when bearish news is scored and the rule fires (in this process, not the server's)
        scored(texts(BEARISH, "AAPL", [T0 + 48 * HOUR, T0 + 48 * HOUR + timedelta(minutes=5)]))
        alert = Alert.objects.get(rule=rule)

        # then the alert appears in the open inbox without a reload, with its buttons
        row = page.locator(f'#alert-inbox tr[data-alert="{alert.pk}"]')
        expect(row).to_be_visible(timeout=15_000)
        expect(row).to_contain_text("AAPL mean sentiment -0.70 over 1 h is below -0.30")
        expect(row.get_by_role("button", name="Acknowledge")).to_be_visible()
        expect(page.locator("#open-alerts")).to_have_text("1")
        row.locator("summary").click()
        expect(row.locator("details li")).to_have_count(2)

        # acknowledging it from the row posts the form (the CSRF token came from the page)
        row.get_by_role("button", name="Acknowledge").click()
        expect(page.locator(".messages")).to_contain_text(f"Alert {alert.pk} acknowledged.")
        alert.refresh_from_db()
        assert alert.status == "acknowledged"

        # the overview's feed takes newly scored documents live, their companies highlighted
        page.goto(server.url + "/sentiment/")
        expect(page.locator("#ws-state")).to_have_text("live")
        [(text, _)] = rows = texts(BULLISH, "MSFT", [T0 + 50 * HOUR])
        scored(rows)
        card = page.locator("#feed li.doc-card").first
        expect(card).to_contain_text(text, timeout=15_000)
        expect(card.locator("a.mention")).to_have_text("$MSFT")

        # the document's score explained by the server's model (the bundled default), shaded word by word
        card.get_by_role("link", name="details").click()
        page.get_by_role("button", name="Explain").click()
        expect(page.locator("#explain-tokens .attr").first).to_be_visible(timeout=120_000)
        expect(page.locator("#explain-version")).to_have_text("default")
        assert page.locator("#explain-tokens").inner_text() == text
    finally:
        context.close()
    assert problems == [], server.log_tail()
