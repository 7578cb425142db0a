"""The reply pipeline with the real bundled models: MiniLM retrieval, the default intent
model, SmolLM2-135M generation (greedy) and the grounding check / extractive fallback."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync

from apps.chat.models import Message
from apps.chat.services import prompting
from apps.chat.services.articles import article_create
from apps.chat.services.conversations import conversation_start, customer_message_add
from apps.chat.services.reply import ReplyFinished, ReplyStarted, ReplyToken, reply_events

pytestmark = pytest.mark.django_db
REAL_EMBEDDER = True  # tests/chat/conftest.py leaves the bundled MiniLM in place

# Written after the ABCD store's policies (../shared/datasets/abcd_kb_only), shortened.
ARTICLES = [
    (
        "Product Defect: Return Due to Size",
        "Customers can return an item that does not fit. How long they have depends on their membership. "
        "Gold members get unlimited returns at any time. Silver members can return an item within 6 months "
        "of purchase. Bronze members can return an item within 90 days. Guests can return an item within 30 days.",
    ),
    (
        "Account Access: Recover Password",
        "To reset a forgotten password, open the login page, choose 'forgot password' and follow the link "
        "we e-mail to you. The link is valid for 24 hours.",
    ),
    (
        "Shipping Issue: Shipping Cost",
        "Standard shipping is free above 50 dollars. Express delivery costs 12 dollars and arrives the next "
        "business day.",
    ),
]


def _ask(text: str) -> tuple[list[Any], Message]:
    conversation, _ = conversation_start(route=None, customer=None, origin="")
    message, _ = customer_message_add(conversation, text, client_id=None)

    async def collect() -> list[Any]:
        return [event async for event in reply_events(conversation, message)]

    events = async_to_sync(collect)()
    return events, Message.objects.get(pk=events[0].message_id)


@pytest.fixture(autouse=True)
def kb() -> None:
    for title, body in ARTICLES:
        article_create(values={"title": title, "body": body, "published": True})


def test_silver_member_return_question_gets_the_policy_fact() -> None:
    events, message = _ask("How long do I have to return something? I'm a silver member.")

    assert isinstance(events[0], ReplyStarted) and isinstance(events[-1], ReplyFinished)
    assert message.decision == "answer" and message.completed
    assert message.sources[0]["title"] == "Product Defect: Return Due to Size"
    assert message.generator in ("lm", "extractive")
    assert "6 months" in message.text or "six months" in message.text.lower(), message.text
    if message.generator == "lm":  # what streamed is what was stored
        assert "".join(e.text for e in events if isinstance(e, ReplyToken)).strip() == message.text
    assert message.model_versions["chat-lm"] and message.timings["total_ms"] > 0


def test_a_question_outside_the_kb_gets_an_honest_unknown() -> None:
    events, message = _ask("Who is the president of France?")

    assert isinstance(events[-1], ReplyFinished)
    assert message.decision == "unknown" and message.text == prompting.UNKNOWN_REPLY
    assert message.sources == []
