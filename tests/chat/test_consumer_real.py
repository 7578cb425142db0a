"""ws/chat/<id>/ with the real bundled models: MiniLM retrieval, the default intent model and
SmolLM2-135M streaming its answer through the socket."""

from __future__ import annotations

import pytest

from apps.chat.models import Message
from apps.chat.services.articles import article_create
from tests.chat.chat_ws import conversation_new, redaction_warm, until_type, visitor_connect
from tests.core.ws import run

pytestmark = pytest.mark.django_db(transaction=True)  # sockets close DB connections on disconnect
REAL_EMBEDDER = True  # tests/chat/conftest.py leaves the bundled MiniLM in place

RETURNS = (
    "Customers can return an item that does not fit. How long they have depends on their membership. "
    "Gold members get unlimited returns at any time. Silver members can return an item within 6 months "
    "of purchase. Bronze members can return an item within 90 days. Guests can return an item within 30 days."
)


def test_a_question_streams_tokens_and_ends_with_its_source(settings):
    settings.TRELLIS_CHAT_MAX_REPLY_TOKENS = 48  # enough for several pieces; keeps a loaded CPU quick
    article_create(values={"title": "Product Defect: Return Due to Size", "body": RETURNS, "published": True})
    article_create(
        values={
            "title": "Shipping Issue: Shipping Cost",
            "body": "Standard shipping is free above 50 dollars. Express delivery costs 12 dollars.",
            "published": True,
        }
    )
    redaction_warm()
    conversation, token = conversation_new()

    async def scenario():
        comm, _ = await visitor_connect(conversation, token)
        await comm.send_json_to({"type": "message", "text": "How long do silver members have to return an item?"})
        frames = await until_type(comm, "message_end")
        kinds = [f["type"] for f in frames]
        assert kinds[:2] == ["message", "message_start"]
        assert kinds.count("token") > 1
        end = frames[-1]["message"]
        assert end["completed"] is True and end["decision"] == "answer"
        assert end["sources"][0]["title"] == "Product Defect: Return Due to Size"
        assert end["text"].strip()
        await comm.disconnect()

    run(scenario)
    stored = Message.objects.get(conversation=conversation, role="assistant")
    assert stored.completed and stored.generator in ("lm", "extractive")
