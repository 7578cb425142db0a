"""Chat analytics figures on a hand-built set, unanswered questions grouping, pages and API."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone

from apps.chat.models import Conversation, Feedback, Message
from apps.chat.services import unanswered as unanswered_service
from apps.chat.services.analytics import chat_analytics
from apps.chat.services.unanswered import unanswered_questions
from tests.recommend.conftest import WordHashEmbedder

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unanswered_service, "_embedder", WordHashEmbedder)


def _say(conversation: Conversation, role: str, text: str, **fields: Any) -> Message:
    return Message.objects.create(conversation=conversation, role=role, text=text, **fields)


def _reply(conversation: Conversation, question: str, *, helpful: bool | None = None, **fields: Any) -> Message:
    _say(conversation, "customer", question)
    reply = _say(conversation, "assistant", "An answer.", **fields)
    if helpful is not None:
        Feedback.objects.create(message=reply, helpful=helpful)
    return reply


def _hand_built_set() -> None:
    now = timezone.now()
    resolved = Conversation.objects.create(status="closed", rating=5, closed_at=now)
    _reply(resolved, "refund?", helpful=True, intent="refund", confidence=0.9, timings={"first_token_ms": 100})
    handed = Conversation.objects.create(status="closed", handoff_reason="low_retrieval", handoff_at=now)
    _reply(handed, "warranty on a toaster?", decision="handoff", abstained=True, timings={"first_token_ms": 400})
    disliked = Conversation.objects.create(status="closed", rating=2)
    _reply(disliked, "refund again?", helpful=False, intent="refund", confidence=0.8, timings={"first_token_ms": 300})
    waiting = Conversation.objects.create(status="waiting", handoff_reason="asked", handoff_at=now)
    _reply(waiting, "a person please", decision="handoff", timings={})
    quiet = Conversation.objects.create(status="closed", rating=4)
    _reply(quiet, "shipping?", intent="shipping", confidence=0.7, timings={"first_token_ms": 200})
    old = Conversation.objects.create(status="closed", rating=1)  # outside the 7-day window
    _reply(old, "old question", helpful=False, decision="unknown", intent="refund", timings={"first_token_ms": 9000})
    ten_days_ago = now - dt.timedelta(days=10)
    Conversation.objects.filter(pk=old.pk).update(created_at=ten_days_ago)
    Message.objects.filter(conversation=old).update(created_at=ten_days_ago)


def test_analytics_figures_on_a_hand_built_set() -> None:
    _hand_built_set()

    data = chat_analytics(days=7)

    assert data["conversations"]["total"] == 5
    assert len(data["conversations"]["labels"]) == 7
    assert data["conversations"]["labels"][-1] == timezone.localdate().isoformat()
    assert data["conversations"]["counts"] == [0, 0, 0, 0, 0, 0, 5]
    assert data["resolution"] == {"closed": 4, "resolved": 2, "rate": 0.5}
    assert data["handoff"]["total"] == 2 and data["handoff"]["rate"] == 0.4
    assert [(r["reason"], r["count"], r["rate"]) for r in data["handoff"]["by_reason"]] == [
        ("asked", 1, 0.2),
        ("low_retrieval", 1, 0.2),
    ]
    assert data["first_token"] == {"replies": 4, "p50_ms": 200.0, "p95_ms": 400.0}
    assert data["intents"] == {
        "top": [{"intent": "refund", "count": 2}, {"intent": "shipping", "count": 1}],
        "abstained": 1,
    }
    assert data["thumbs"] == {"up": 1, "down": 1, "up_share": 0.5, "down_share": 0.5}
    assert data["rating"] == {"count": 3, "average": 3.67}
    assert data["unanswered"] == 2  # the low-retrieval hand-off and the thumbs down; "asked" is not


def test_analytics_of_an_empty_window_has_no_rates() -> None:
    data = chat_analytics(days=1)

    assert data["resolution"]["rate"] is None and data["handoff"]["rate"] is None
    assert data["first_token"] == {"replies": 0, "p50_ms": None, "p95_ms": None}
    assert data["rating"] == {"count": 0, "average": None}
    with pytest.raises(ValueError, match="between 1 and 365"):
        chat_analytics(days=0)


# --- unanswered questions -------------------------------------------------------------------


def test_unanswered_groups_by_text_then_similarity(fake_embedder: None) -> None:
    for question in ("How do I return an item?", "how do I return an item", "How can I return an item?"):
        _reply(Conversation.objects.create(), question, decision="unknown")
    _reply(Conversation.objects.create(handoff_reason="out_of_scope"), "Where is my parcel?", decision="handoff")
    _reply(Conversation.objects.create(handoff_reason="asked"), "Where is my parcel?", decision="handoff")  # asked
    _reply(Conversation.objects.create(), "Where is my parcel?", helpful=True)  # answered well
    _reply(Conversation.objects.create(), "Do you sell gift cards?", helpful=False, decision="answer")

    report = unanswered_questions(days=30)

    assert report.grouping == "embedding" and report.replies == 5
    rows = [(g.question, g.count, dict(g.reasons), g.variants) for g in report.groups]
    assert rows[0] == ("how do I return an item", 3, {"unknown": 3}, ["How can I return an item?"])
    assert sorted(rows[1:]) == [
        ("Do you sell gift cards?", 1, {"thumbs_down": 1}, []),
        ("Where is my parcel?", 1, {"out_of_scope": 1}, []),
    ]


def test_unanswered_falls_back_to_text_when_the_embedder_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise OSError("no weights here")

    monkeypatch.setattr(unanswered_service, "_embedder", broken)
    for question in ("Can I pay with bitcoin?", "can I pay with Bitcoin", "Do you accept bitcoin as payment?"):
        _reply(Conversation.objects.create(), question, decision="unknown")

    report = unanswered_questions(days=30)

    assert report.grouping == "text" and "OSError" in report.grouping_note
    assert sorted(g.count for g in report.groups) == [1, 2]


def test_unanswered_merges_rephrasings_with_the_real_embedder() -> None:
    questions = [
        "Do you ship to Iceland?",
        "Can you deliver to Iceland?",
        "is shipping to iceland possible",
        "Can I pay with bitcoin?",
        "Do you accept bitcoin as payment?",
        "How long does a refund take?",
    ]
    for question in questions:
        _reply(Conversation.objects.create(), question, decision="unknown")

    report = unanswered_questions(days=30)

    assert report.grouping == "embedding"
    groups = sorted(sorted([g.question, *g.variants]) for g in report.groups)
    assert groups == [
        ["Can I pay with bitcoin?", "Do you accept bitcoin as payment?"],
        ["Can you deliver to Iceland?", "Do you ship to Iceland?", "is shipping to iceland possible"],
        ["How long does a refund take?"],
    ]


# --- pages and API --------------------------------------------------------------------------


def test_analytics_page_carries_its_data_without_inline_scripts(make_user: Any, client: Any) -> None:
    _hand_built_set()
    client.force_login(make_user("agent"))

    page = client.get("/chat/analytics/?days=7").content.decode()

    assert 'id="chat-analytics-data"' in page and '"resolved": 2' in page
    assert "vendor/chart.js/dist/chart.umd.js" in page and "chat/analytics.js" in page
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"<[a-z]+\s[^>]*\son[a-z]+\s*=", page)  # no inline handlers
    assert "style=" not in page
    assert 'id="tile-resolution">50%' in page


def test_unanswered_page_links_to_a_prefilled_article(make_user: Any, client: Any, fake_embedder: None) -> None:
    _reply(Conversation.objects.create(), "Do you sell gift cards?", decision="unknown")
    client.force_login(make_user("agent"))

    page = client.get("/chat/unanswered/").content.decode()
    form = client.get("/kb/articles/new/?title=Do+you+sell+gift+cards%3F").content.decode()

    assert 'href="/kb/articles/new/?title=Do+you+sell+gift+cards%3F"' in page
    assert 'value="Do you sell gift cards?"' in form


def test_api_returns_the_same_figures_and_checks_input(make_user: Any, api_client: Any, fake_embedder: None) -> None:
    _hand_built_set()
    api_client.force_authenticate(make_user("admin"))

    analytics = api_client.get("/api/chat/analytics/?days=7")
    unanswered = api_client.get("/api/chat/unanswered/?days=7")
    bad = api_client.get("/api/chat/analytics/?days=0")

    assert analytics.status_code == 200 and analytics.json()["resolution"]["rate"] == 0.5
    assert unanswered.status_code == 200 and unanswered.json()["replies"] == 2
    assert unanswered.json()["groups"][0]["write_article_url"].startswith("/kb/articles/new/?title=")
    assert bad.status_code == 400


@pytest.mark.parametrize("path", ["/chat/analytics/", "/chat/unanswered/"])
def test_pages_are_for_agents(make_user: Any, client: Any, path: str) -> None:
    anonymous = client.get(path)
    client.force_login(make_user("analyst"))

    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", ["/api/chat/analytics/", "/api/chat/unanswered/"])
def test_api_is_for_agents(make_user: Any, api_client: Any, path: str) -> None:
    assert api_client.get(path).status_code == 401
    api_client.force_authenticate(make_user("analyst"))
    assert api_client.get(path).status_code == 403
