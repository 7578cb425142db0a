"""The agent REST API: take over, hand back, close, reply, draft, corrections and saved replies,
by role, with unknown ids and impossible states, and the frames it sends to the sockets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.chat.models import Conversation, Correction, Message, SavedReply, WidgetRoute
from apps.chat.services.articles import article_create
from apps.chat.services.conversations import conversation_handoff, conversation_start, customer_message_add
from apps.chat.services.live import QUEUE_GROUP, conversation_group
from tests.chat.reply_fakes import FakeModels, fake_models_install

pytestmark = pytest.mark.django_db

ACTIONS = ("take-over", "hand-back", "close", "messages", "draft")


@pytest.fixture
def agent(make_user):
    user = make_user("agent", username="alice")
    user.first_name = "Alice"
    user.save()
    return user


@pytest.fixture
def client(agent) -> APIClient:
    client = APIClient()
    client.force_authenticate(agent)
    return client


@pytest.fixture
def waiting() -> Conversation:
    conversation, _ = conversation_start(route=WidgetRoute.objects.create(key="shop", name="Shop"), origin="")
    customer_message_add(conversation, "I want to speak to a person about my refund", client_id="c1")
    conversation_handoff(conversation, Conversation.HandoffReason.ASKED)
    return conversation


def _url(conversation: Conversation, action: str) -> str:
    return f"/api/chat/conversations/{conversation.public_id}/{action}/"


class Listener:
    """A channel in the conversation's group and the queue group: what the sockets would get.

    Every call runs on one private event loop: the Redis channel layer keeps per-loop receive
    buffers, so a receive on a new loop each time (``async_to_sync``) would meet a buffer bound
    to the previous one."""

    def __init__(self, conversation: Conversation) -> None:
        self.layer = get_channel_layer()
        self.loop = asyncio.new_event_loop()
        self.channel = self.loop.run_until_complete(self.layer.new_channel())
        self.loop.run_until_complete(self.layer.group_add(conversation_group(conversation.public_id), self.channel))
        self.loop.run_until_complete(self.layer.group_add(QUEUE_GROUP, self.channel))

    def events(self) -> list[dict[str, Any]]:
        async def drain() -> list[dict[str, Any]]:
            received = []
            while True:
                try:
                    received.append(await asyncio.wait_for(self.layer.receive(self.channel), 0.05))
                except TimeoutError:
                    return received

        return self.loop.run_until_complete(drain())

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def listener(waiting) -> Iterator[Listener]:
    listener = Listener(waiting)
    yield listener
    listener.close()


def _frames(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["frame"] for e in events if e["type"] == "chat.frame"]


def test_take_over_reply_hand_back_close_reach_the_sockets(
    client, waiting, listener, django_capture_on_commit_callbacks
):
    # take over: the conversation is the agent's, the customer is told, the queue re-reads
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url(waiting, "take-over"))
    assert response.status_code == 200
    body = response.json()
    assert body["conversation"]["status"] == "agent" and body["conversation"]["agent"] == "Alice"
    assert body["message"]["role"] == "system" and "Alice" in body["message"]["text"]
    waiting.refresh_from_db()
    assert waiting.status == "agent" and waiting.assigned_agent.username == "alice"
    events = listener.events()
    assert _frames(events) == [
        {"type": "message", "message": body["message"]},
        {"type": "status", "status": "agent", "agent": "Alice"},
    ]
    assert {"type": "chat.queue_changed"} in events

    # reply: stored as the agent's, sent to the conversation (no queue change)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url(waiting, "messages"), {"text": "  Hi, I can help.  "}, format="json")
    assert response.status_code == 201
    stored = Message.objects.get(pk=response.json()["id"])
    assert (stored.role, stored.text, stored.author.username, stored.generator) == (
        "agent",
        "Hi, I can help.",
        "alice",
        "agent",
    )
    assert _frames(listener.events()) == [{"type": "message", "message": response.json()}]

    # a draft sent as is is marked so
    response = client.post(_url(waiting, "messages"), {"text": "From the draft.", "generator": "draft"}, format="json")
    assert Message.objects.get(pk=response.json()["id"]).generator == "draft"

    # hand back, then close
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(_url(waiting, "hand-back")).json()["conversation"]["status"] == "bot"
    assert _frames(listener.events())[-1] == {"type": "status", "status": "bot", "agent": None}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url(waiting, "close"))
    assert response.json()["conversation"]["status"] == "closed"
    assert _frames(listener.events())[-1] == {"type": "status", "status": "closed", "agent": None}


def test_impossible_actions_are_409_or_400_and_change_nothing(client, waiting, listener):
    # replying before taking over
    response = client.post(_url(waiting, "messages"), {"text": "Hello"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conversation_state"
    # handing back what no agent has
    assert client.post(_url(waiting, "hand-back")).status_code == 409
    # empty text, unknown generator
    client.post(_url(waiting, "take-over"))
    assert client.post(_url(waiting, "messages"), {"text": "   "}, format="json").status_code == 400
    assert client.post(_url(waiting, "messages"), {"text": "x", "generator": "lm"}, format="json").status_code == 400
    assert not Message.objects.filter(role="agent").exists()
    # everything on a closed conversation
    client.post(_url(waiting, "close"))
    for action in ("take-over", "hand-back", "close"):
        assert client.post(_url(waiting, action)).status_code == 409, action
    assert client.post(_url(waiting, "messages"), {"text": "late"}, format="json").status_code == 409


def test_taking_over_twice_changes_nothing_the_second_time(client, waiting):
    client.post(_url(waiting, "take-over"))
    count = Message.objects.count()

    response = client.post(_url(waiting, "take-over"))

    assert response.status_code == 200 and response.json()["message"] is None
    assert Message.objects.count() == count


@pytest.mark.parametrize("action", ACTIONS)
def test_wrong_role_anonymous_and_unknown_ids(action, make_user, waiting):
    method = "get" if action == "draft" else "post"
    analyst = APIClient()
    analyst.force_authenticate(make_user("analyst"))
    assert getattr(analyst, method)(_url(waiting, action)).status_code == 403
    assert getattr(APIClient(), method)(_url(waiting, action)).status_code == 401
    agent = APIClient()
    agent.force_authenticate(make_user("agent"))
    unknown = Conversation(public_id=uuid.uuid4())
    assert getattr(agent, method)(_url(unknown, action), {"text": "x"}, format="json").status_code == 404
    waiting.refresh_from_db()
    assert waiting.status == "waiting"


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> FakeModels:
    return fake_models_install(monkeypatch)


def test_draft_is_grounded_in_the_kb_and_not_stored(client, waiting, settings, fake_models: FakeModels):
    settings.TRELLIS_CHAT_MIN_PASSAGE_SCORE = 0.3  # the word-hash embedder's scale, not MiniLM's
    article_create(
        values={
            "title": "Returns policy",
            "body": "Silver members can return items within 30 days of delivery for a full refund.",
            "published": True,
        }
    )
    customer_message_add(waiting, "How many days do silver members have to return items?", client_id="c2")
    fake_models.lm.pieces = ["Silver members can return items within 30 days of delivery [1]."]
    before = Message.objects.count()

    response = client.get(_url(waiting, "draft"))

    assert response.status_code == 200
    body = response.json()
    assert "30 days" in body["text"]
    assert body["sources"][0]["title"] == "Returns policy"
    assert Message.objects.count() == before


def test_draft_answers_the_earlier_question_when_the_latest_asks_for_a_person(
    client, waiting, settings, fake_models: FakeModels
):
    settings.TRELLIS_CHAT_MIN_PASSAGE_SCORE = 0.3
    article_create(
        values={
            "title": "Returns policy",
            "body": "Silver members can return items within 30 days of delivery for a full refund.",
            "published": True,
        }
    )
    customer_message_add(waiting, "How many days do silver members have to return items?", client_id="c2")
    Message.objects.create(conversation=waiting, role="assistant", text="Let me check.")
    customer_message_add(waiting, "Just get me a human", client_id="c3")
    fake_models.lm.pieces = ["Silver members can return items within 30 days of delivery [1]."]

    body = client.get(_url(waiting, "draft")).json()

    assert "30 days" in body["text"]
    assert body["sources"][0]["title"] == "Returns policy"


def test_draft_without_a_chat_model_is_a_503(client, waiting, settings, fake_models: FakeModels, monkeypatch):
    from apps.chat.services import assist

    settings.TRELLIS_CHAT_MIN_PASSAGE_SCORE = 0.3
    article_create(values={"title": "Returns policy", "body": "Silver members can return items.", "published": True})
    customer_message_add(waiting, "Can silver members return items?", client_id="c2")

    def unavailable(role: str) -> Any:
        raise RuntimeError(f"no model serves {role}")

    monkeypatch.setattr(assist, "model_get", unavailable)
    response = client.get(_url(waiting, "draft"))

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"


def _assistant_reply(conversation: Conversation) -> Message:
    return Message.objects.create(conversation=conversation, role="assistant", text="I'm unable to help with refunds.")


def test_correction_of_an_assistant_reply_is_stored_as_training_data(client, agent, waiting):
    reply = _assistant_reply(waiting)

    response = client.post(
        f"/api/chat/messages/{reply.pk}/corrections/",
        {"text": "You can return items within 30 days.", "intent": "refund"},
        format="json",
    )

    assert response.status_code == 201
    correction = Correction.objects.get()
    assert (correction.message, correction.text, correction.intent, correction.agent) == (
        reply,
        "You can return items within 30 days.",
        "refund",
        agent,
    )
    assert response.json()["message_id"] == reply.pk


def test_bad_corrections_are_refused(client, make_user, waiting):
    customer = waiting.messages.filter(role="customer").first()
    reply = _assistant_reply(waiting)
    url = f"/api/chat/messages/{reply.pk}/corrections/"
    # only assistant replies; text required; unknown message; wrong role
    assert (
        client.post(f"/api/chat/messages/{customer.pk}/corrections/", {"text": "x"}, format="json").status_code == 400
    )
    assert client.post(url, {"text": ""}, format="json").status_code == 400
    assert client.post(url, {"text": "x" * 4001}, format="json").status_code == 400
    assert client.post("/api/chat/messages/99999/corrections/", {"text": "x"}, format="json").status_code == 404
    analyst = APIClient()
    analyst.force_authenticate(make_user("analyst"))
    assert analyst.post(url, {"text": "x"}, format="json").status_code == 403
    assert not Correction.objects.exists()


# --- saved replies --------------------------------------------------------------------------


def test_saved_replies_crud(client):
    # create
    response = client.post(
        "/api/chat/saved-replies/", {"shortcut": "/refund", "title": "Refunds", "text": "30 days."}, format="json"
    )
    assert response.status_code == 201
    created = response.json()
    assert (created["shortcut"], created["created_by"]) == ("refund", "alice")
    client.post("/api/chat/saved-replies/", {"shortcut": "hours", "title": "Hours", "text": "9 to 5."}, format="json")
    # list and search
    assert [r["shortcut"] for r in client.get("/api/chat/saved-replies/").json()] == ["hours", "refund"]
    assert [r["shortcut"] for r in client.get("/api/chat/saved-replies/?q=days").json()] == ["refund"]
    # read, update, delete
    url = f"/api/chat/saved-replies/{created['id']}/"
    assert client.get(url).json()["text"] == "30 days."
    assert client.patch(url, {"text": "Thirty days."}, format="json").json()["text"] == "Thirty days."
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert list(SavedReply.objects.values_list("shortcut", flat=True)) == ["hours"]
    assert AuditEvent.objects.filter(action__startswith="chat_saved_reply.").count() == 4


@pytest.mark.parametrize(
    ("values", "field_message"),
    [
        ({"shortcut": "Two Words", "title": "t", "text": "x"}, "lower-case letters"),
        ({"shortcut": "taken", "title": "t", "text": "x"}, "already used"),
        ({"shortcut": "ok", "title": "", "text": "x"}, "blank"),
        ({"shortcut": "ok", "title": "t", "text": "x" * 2001}, "2000"),
    ],
)
def test_saved_reply_validation(client, values, field_message):
    SavedReply.objects.create(shortcut="taken", title="Taken", text="first")

    response = client.post("/api/chat/saved-replies/", values, format="json")

    assert response.status_code == 400
    assert field_message in response.json()["error"]["message"]
    assert SavedReply.objects.count() == 1


def test_saved_replies_by_role(make_user):
    reply = SavedReply.objects.create(shortcut="hours", title="Hours", text="9 to 5.")
    analyst = APIClient()
    analyst.force_authenticate(make_user("analyst"))
    assert analyst.get("/api/chat/saved-replies/").status_code == 403
    assert analyst.delete(f"/api/chat/saved-replies/{reply.pk}/").status_code == 403
    assert APIClient().get("/api/chat/saved-replies/").status_code == 401
    admin = APIClient()
    admin.force_authenticate(make_user("admin"))
    assert admin.get("/api/chat/saved-replies/").status_code == 200
    assert SavedReply.objects.count() == 1
