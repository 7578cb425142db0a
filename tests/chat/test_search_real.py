"""Retrieval with the real bundled embedder (MiniLM, loaded once for this module)."""

from __future__ import annotations

import pytest

from apps.chat.services.articles import article_create
from apps.chat.services.index import kb_search

pytestmark = pytest.mark.django_db
REAL_EMBEDDER = True  # tests/chat/conftest.py leaves the embedder alone

ARTICLES = {
    "returns": (
        "Returns and membership",
        "Gold members get unlimited returns. Silver members can return an item "
        "within six months of purchase. Bronze members have 90 days, guests 30 days.",
    ),
    "password": (
        "Recover your password",
        "To reset a forgotten password, open the login page, choose "
        "'forgot password' and follow the link we e-mail to you.",
    ),
    "shipping": (
        "Shipping costs",
        "Standard shipping is free above 50 dollars; express delivery costs 12 dollars "
        "and arrives the next business day.",
    ),
    "promo": ("Promo codes", "A promo code is valid for 7 days after it is issued and only once per customer."),
    "slow": (
        "Website too slow",
        "If the site loads slowly, clear the browser cache, close other tabs and try again in a private window.",
    ),
}


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How long do I have to send something back? I'm a silver member.", "returns"),
        ("I can't remember my login credentials", "password"),
        ("What does it cost to get my order delivered quickly?", "shipping"),
        ("my discount coupon is not accepted any more", "promo"),
        ("pages take forever to load", "slow"),
    ],
)
def test_paraphrased_question_finds_the_right_article(question, expected):
    ids = {
        key: article_create(values={"title": t, "body": b, "published": True}).pk for key, (t, b) in ARTICLES.items()
    }
    results = kb_search(question, 3)
    assert results[0].article_id == ids[expected], [(p.article_title, p.score) for p in results]
    assert results[0].score > results[-1].score
