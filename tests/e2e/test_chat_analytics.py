"""The chat analytics page in headless Chromium, served by a real uvicorn: Chart.js (from
node_modules) draws its three charts from the page's json_script under the
Content-Security-Policy, with no violation or console error; the unanswered questions page
links to a pre-filled article form."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, expect

from apps.chat.models import Conversation, Feedback, Message
from tests.e2e.live import WATCH_VIOLATIONS, uvicorn_server
from tests.servers import conftest as servers
from tests.servers.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.servers, pytest.mark.timeout(600), pytest.mark.django_db(transaction=True)]

start_process = servers.start_process  # the fixture that starts and always stops a child process

PASSWORD = "pw-for-tests-123"
SCREENSHOT = "/tmp/e2e-chat-analytics.png"
@pytest.fixture
def server(start_process, tmp_path) -> Server:
    return uvicorn_server(start_process, tmp_path)


def _conversations() -> None:
    now = timezone.now()
    for n, (status, reason, intent, helpful) in enumerate(
        [
            ("closed", "", "refund", True),
            ("closed", "low_retrieval", "", None),
            ("closed", "", "shipping", False),
            ("waiting", "asked", "refund", None),
        ]
    ):
        conversation = Conversation.objects.create(
            status=status, handoff_reason=reason, handoff_at=now if reason else None, rating=5 - n
        )
        Message.objects.create(conversation=conversation, role="customer", text=f"Do you sell gift cards {n}?")
        reply = Message.objects.create(
            conversation=conversation,
            role="assistant",
            text="An answer.",
            intent=intent,
            confidence=0.9,
            decision="handoff" if reason else "answer",
            timings={"first_token_ms": 100 * (n + 1)},
        )
        if helpful is not None:
            Feedback.objects.create(message=reply, helpful=helpful)


def test_analytics_charts_draw_under_the_csp(browser: Browser, server: Server, make_user) -> None:
    make_user("agent", username="agatha", password=PASSWORD)
    _conversations()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    context.expose_function("reportViolation", lambda text: problems.append(f"CSP {text}"))
    context.add_init_script(WATCH_VIOLATIONS)
    try:
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and problems.append(f"console {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"error {e}"))
        page.goto(server.url + "/accounts/login/")
        page.get_by_label("Username").fill("agatha")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Welcome, agatha")).to_be_visible()

        page.goto(server.url + "/chat/analytics/?days=7")
        expect(page.get_by_role("heading", name="Chat analytics")).to_be_visible()
        expect(page.locator("#tile-resolution")).to_have_text("33%")  # 1 of 3 closed: no hand-off, no thumbs down
        page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-intents'))")
        drawn = page.evaluate(
            """() => ['chart-conversations', 'chart-handoffs', 'chart-intents'].map(id => {
                const c = Chart.getChart(document.getElementById(id));
                return {labels: c.data.labels, data: c.data.datasets[0].data, h: c.height}; })"""
        )
        assert drawn[0]["labels"][-1] == timezone.localdate().isoformat() and drawn[0]["data"][-1] == 4
        assert drawn[1]["labels"] == ["Customer asked for a person", "Not in the knowledge base"]
        assert drawn[2] == {"labels": ["refund", "shipping"], "data": [2, 1], "h": drawn[2]["h"]}
        assert min(d["h"] for d in drawn) > 100
        page.screenshot(path=SCREENSHOT, full_page=True)

        page.goto(server.url + "/chat/unanswered/?days=7")
        page.get_by_role("link", name="Write an article").first.click()
        expect(page.get_by_label("Title")).to_have_value("Do you sell gift cards 2?")
        assert problems == []
    finally:
        context.close()
