"""The home page offers each app's tile only to the roles that may open it."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("roles", "sentiment", "kb"),
    [(["analyst"], True, False), (["agent"], False, True), (["admin"], True, True),
     (["merchandiser"], False, False), ([], False, False)],
)
def test_sentiment_chat_and_knowledge_base_tiles_follow_the_roles(make_user, roles, sentiment, kb):
    client = Client()
    client.force_login(make_user(*roles))

    page = client.get("/").content.decode()

    assert ("<h2>Sentiment</h2>" in page) is sentiment
    assert ("<h2>Knowledge base</h2>" in page) is kb
    assert ("<h2>Chat</h2>" in page) is kb  # the agent console: agents and admins, as the knowledge base
