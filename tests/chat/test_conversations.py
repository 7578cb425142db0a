"""Conversations service and REST API: tokens, who sees what, idempotent messages, transitions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core import signing

from apps.chat.models import Conversation, Feedback, Message, WidgetRoute
from apps.chat.services import conversations as conv_service
from apps.chat.services.conversations import (
    ConversationStateError,
    ConversationTokenError,
    MessageInvalid,
    agent_message_add,
    conversation_can_view,
    conversation_close,
    conversation_for_token,
    conversation_hand_back,
    conversation_handoff,
    conversation_start,
    conversation_take_over,
    customer_message_add,
    feedback_set,
    message_payload,
    rating_set,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def route() -> WidgetRoute:
    return WidgetRoute.objects.create(key="shop", name="Shop", allowed_origins=["https://shop.example.com"])


def _start(route: WidgetRoute, customer: Any = None) -> tuple[Conversation, str]:
    return conversation_start(route=route, customer=customer, origin="https://shop.example.com")


# --- tokens -------------------------------------------------------------------------------


def test_token_opens_its_own_conversation(route: WidgetRoute) -> None:
    conversation, token = _start(route)

    assert conversation_for_token(conversation.public_id, token).pk == conversation.pk
    assert conversation_for_token(str(conversation.public_id), token).pk == conversation.pk


def test_forged_token_is_refused(route: WidgetRoute) -> None:
    conversation, token = _start(route)
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    wrong_key = signing.TimestampSigner(key="not-the-secret", salt=conv_service.TOKEN_SALT).sign(
        f"{conversation.public_id.hex}:{conversation.visitor_id.hex}"
    )

    for bad in (forged, wrong_key, "garbage", ""):
        with pytest.raises(ConversationTokenError) as caught:
            conversation_for_token(conversation.public_id, bad)
        assert caught.value.reason in ("forged", "missing")


def test_token_of_another_conversation_is_refused(route: WidgetRoute) -> None:
    mine, _ = _start(route)
    _, other_token = _start(route)

    with pytest.raises(ConversationTokenError) as caught:
        conversation_for_token(mine.public_id, other_token)
    assert caught.value.reason == "other_conversation"


def test_expired_token_is_refused(route: WidgetRoute, settings: Any) -> None:
    conversation, token = _start(route)
    settings.TRELLIS_CHAT_TOKEN_MAX_AGE_S = -1  # every token is older than that

    with pytest.raises(ConversationTokenError) as caught:
        conversation_for_token(conversation.public_id, token)
    assert caught.value.reason == "expired"


def test_inactive_route_cannot_start(route: WidgetRoute) -> None:
    route.active = False
    route.save()

    with pytest.raises(ConversationStateError):
        _start(route)


# --- visibility ---------------------------------------------------------------------------


def test_can_view_owner_agent_and_token_only(route: WidgetRoute, make_user: Any) -> None:
    owner, stranger, agent = make_user(), make_user(), make_user("agent")
    conversation, _ = _start(route, customer=owner)

    assert conversation_can_view(conversation, user=owner, token_ok=False)
    assert conversation_can_view(conversation, user=agent, token_ok=False)
    assert conversation_can_view(conversation, user=None, token_ok=True)
    assert not conversation_can_view(conversation, user=stranger, token_ok=False)
    assert not conversation_can_view(conversation, user=None, token_ok=False)


# --- customer messages --------------------------------------------------------------------


def test_customer_message_is_redacted_and_idempotent_on_client_id(route: WidgetRoute) -> None:
    conversation, _ = _start(route)
    text = "My email is jane.doe@example.com, where is my order?"

    first, created = customer_message_add(conversation, text, client_id="c-1")
    again, created_again = customer_message_add(conversation, text, client_id="c-1")

    assert created and not created_again
    assert again.pk == first.pk
    assert Message.objects.filter(conversation=conversation).count() == 1
    assert "jane.doe@example.com" not in first.text
    assert "<EMAIL>" in first.text
    assert first.redactions == {"<EMAIL>": 1}


@pytest.mark.parametrize("bad", ["", "   ", "x" * 5000])
def test_customer_message_bad_text_is_refused(route: WidgetRoute, bad: str) -> None:
    conversation, _ = _start(route)

    with pytest.raises(MessageInvalid):
        customer_message_add(conversation, bad, client_id=None)
    assert not Message.objects.exists()


def test_closed_conversation_refuses_messages(route: WidgetRoute, make_user: Any) -> None:
    conversation, _ = _start(route)
    conversation_close(conversation, by=None)

    with pytest.raises(ConversationStateError, match="closed"):
        customer_message_add(conversation, "hello?", client_id="late")
    with pytest.raises(ConversationStateError):
        conversation_take_over(conversation, make_user("agent"))


# --- transitions --------------------------------------------------------------------------


def test_handoff_take_over_hand_back_close(route: WidgetRoute, make_user: Any) -> None:
    agent = make_user("agent", username="sam")
    agent.first_name = "Sam"
    agent.save()
    conversation, _ = _start(route)

    conversation_handoff(conversation, Conversation.HandoffReason.ANGRY)
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.WAITING
    assert conversation.handoff_reason == "angry" and conversation.handoff_at is not None
    assert conversation.priority > 0

    joined = conversation_take_over(conversation, agent)
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.AGENT and conversation.assigned_agent_id == agent.pk
    assert joined.role == Message.Role.SYSTEM and joined.text == "You are now talking to Sam"
    assert conversation_take_over(conversation, agent) is None  # already his: nothing new

    reply = agent_message_add(conversation, agent, "Let me check that for you.")
    assert message_payload(reply)["author"] == "Sam"

    back = conversation_hand_back(conversation, agent)
    conversation.refresh_from_db()
    assert back.text == "The assistant is back"
    assert conversation.status == Conversation.Status.BOT and conversation.assigned_agent is None
    assert conversation.handoff_reason == "angry"  # kept for analytics

    closed = conversation_close(conversation, by=agent)
    conversation.refresh_from_db()
    assert closed.text == "Conversation closed"
    assert conversation.status == Conversation.Status.CLOSED and conversation.closed_at is not None
    with pytest.raises(ConversationStateError):
        conversation_close(conversation, by=agent)


def test_agent_must_take_over_before_replying_and_be_an_agent(route: WidgetRoute, make_user: Any) -> None:
    conversation, _ = _start(route)

    with pytest.raises(ConversationStateError, match="Take the conversation over"):
        agent_message_add(conversation, make_user("agent"), "hi")
    with pytest.raises(ConversationStateError, match="Only agents"):
        conversation_take_over(conversation, make_user())
    with pytest.raises(ConversationStateError, match="Unknown hand-off reason"):
        conversation_handoff(conversation, "bored")


def test_feedback_replaces_and_rating_closes(route: WidgetRoute) -> None:
    conversation, _ = _start(route)
    reply = Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, text="Within 30 days.")

    feedback_set(reply, True)
    feedback_set(reply, False, "wrong")
    closed = rating_set(conversation, 4, "ok")

    assert Feedback.objects.get(message=reply).helpful is False
    conversation.refresh_from_db()
    assert conversation.rating == 4 and conversation.status == Conversation.Status.CLOSED
    assert closed is not None and closed.text == "Conversation closed"
    with pytest.raises(MessageInvalid):
        rating_set(conversation, 6)
    customer = Message.objects.create(conversation=conversation, role=Message.Role.CUSTOMER, text="hi")
    with pytest.raises(MessageInvalid):
        feedback_set(customer, True)


def test_message_payload_shape(route: WidgetRoute) -> None:
    conversation, _ = _start(route)
    message = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        text="Within 30 days [1].",
        sources=[{"chunk_id": 1, "article_id": 7, "title": "Returns", "heading": "Silver", "score": 0.6}],
        decision="answer",
        generator="lm",
        intent="refund",
        confidence=0.9,
    )

    payload = message_payload(message)

    assert set(payload) == {
        "id", "role", "text", "sources", "decision", "generator", "intent", "confidence", "completed",
        "created_at", "author",
    }  # fmt: skip
    assert payload["sources"][0]["article_id"] == 7 and payload["sources"][0]["title"] == "Returns"
    assert "score" not in payload["sources"][0] and "chunk_id" not in payload["sources"][0]
    assert payload["sources"][0]["url"].endswith("/7/")  # the public article page


# --- REST ---------------------------------------------------------------------------------


def _rest_start(api_client: Any, **extra: Any) -> dict[str, Any]:
    response = api_client.post("/api/chat/conversations/", {"route": "shop"}, format="json", **extra)
    assert response.status_code == 201, response.content
    return response.json()


def test_rest_start_anonymous_and_read_with_token(route: WidgetRoute, api_client: Any) -> None:
    body = _rest_start(api_client, HTTP_ORIGIN="https://shop.example.com")

    assert body["ws_path"] == f"/ws/chat/{body['id']}/"
    assert body["greeting"] == route.greeting and body["brand_colour"] == route.brand_colour
    detail = api_client.get(f"/api/chat/conversations/{body['id']}/", HTTP_X_CONVERSATION_TOKEN=body["token"])
    assert detail.status_code == 200
    assert detail.json()["id"] == body["id"] and detail.json()["messages"] == []


def test_rest_visitor_a_cannot_read_b(route: WidgetRoute, api_client: Any) -> None:
    a, b = _rest_start(api_client), _rest_start(api_client)

    with_a_token = api_client.get(f"/api/chat/conversations/{b['id']}/", HTTP_X_CONVERSATION_TOKEN=a["token"])
    no_token = api_client.get(f"/api/chat/conversations/{b['id']}/")
    unknown = api_client.get(f"/api/chat/conversations/{uuid.uuid4()}/", HTTP_X_CONVERSATION_TOKEN=a["token"])

    for response in (with_a_token, no_token, unknown):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_rest_unknown_route_and_foreign_origin(route: WidgetRoute, api_client: Any) -> None:
    unknown = api_client.post("/api/chat/conversations/", {"route": "nope"}, format="json")
    foreign = api_client.post(
        "/api/chat/conversations/", {"route": "shop"}, format="json", HTTP_ORIGIN="https://evil.example.net"
    )

    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "route_unknown"
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
    assert not Conversation.objects.exists()


def test_rest_start_is_throttled_per_address(route: WidgetRoute, api_client: Any, settings: Any) -> None:
    settings.TRELLIS_THROTTLE_CHAT_START = "2/hour"

    codes = [api_client.post("/api/chat/conversations/", {"route": "shop"}, format="json").status_code for _ in "123"]

    assert codes == [201, 201, 429]
    assert Conversation.objects.count() == 2


def test_rest_list_own_for_customers_all_for_agents(route: WidgetRoute, api_client: Any, make_user: Any) -> None:
    owner, other = make_user(), make_user()
    mine, _ = _start(route, customer=owner)
    theirs, _ = _start(route, customer=other)
    conversation_handoff(theirs, Conversation.HandoffReason.ASKED)

    api_client.force_authenticate(owner)
    own = api_client.get("/api/chat/conversations/").json()["results"]
    api_client.force_authenticate(make_user("agent"))
    waiting = api_client.get("/api/chat/conversations/?status=waiting").json()["results"]
    api_client.force_authenticate(None)
    anonymous = api_client.get("/api/chat/conversations/")

    assert [c["id"] for c in own] == [str(mine.public_id)]
    assert [c["id"] for c in waiting] == [str(theirs.public_id)]
    assert anonymous.status_code in (401, 403)


def test_rest_owner_reads_by_session_stranger_gets_404(route: WidgetRoute, api_client: Any, make_user: Any) -> None:
    owner = make_user()
    conversation, _ = _start(route, customer=owner)

    api_client.force_authenticate(make_user())
    stranger = api_client.get(f"/api/chat/conversations/{conversation.public_id}/")
    api_client.force_authenticate(owner)
    own = api_client.get(f"/api/chat/conversations/{conversation.public_id}/")

    assert stranger.status_code == 404
    assert own.status_code == 200


def test_rest_rating_is_the_customers_not_an_agents(route: WidgetRoute, api_client: Any, make_user: Any) -> None:
    owner = make_user()
    conversation, _ = _start(route, customer=owner)
    url = f"/api/chat/conversations/{conversation.public_id}/rating/"

    api_client.force_authenticate(make_user("agent"))
    by_agent = api_client.post(url, {"rating": 1}, format="json")
    api_client.force_authenticate(owner)
    by_owner = api_client.post(url, {"rating": 4}, format="json")

    assert by_agent.status_code == 404
    assert by_owner.status_code == 200 and by_owner.json()["rating"] == 4


def test_rest_feedback_and_rating(route: WidgetRoute, api_client: Any) -> None:
    a, b = _rest_start(api_client), _rest_start(api_client)
    conversation = Conversation.objects.get(public_id=a["id"])
    reply = Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, text="Within 30 days.")
    url = f"/api/chat/messages/{reply.pk}/feedback/"

    foreign = api_client.post(url, {"helpful": True}, format="json", HTTP_X_CONVERSATION_TOKEN=b["token"])
    ok = api_client.post(url, {"helpful": False}, format="json", HTTP_X_CONVERSATION_TOKEN=a["token"])
    bad_rating = api_client.post(
        f"/api/chat/conversations/{a['id']}/rating/", {"rating": 9}, format="json", HTTP_X_CONVERSATION_TOKEN=a["token"]
    )
    rated = api_client.post(
        f"/api/chat/conversations/{a['id']}/rating/", {"rating": 5}, format="json", HTTP_X_CONVERSATION_TOKEN=a["token"]
    )

    assert foreign.status_code == 404
    assert ok.status_code == 200 and ok.json()["helpful"] is False
    assert Feedback.objects.get(message=reply).helpful is False
    assert bad_rating.status_code == 400 and bad_rating.json()["error"]["code"] == "invalid"
    assert rated.status_code == 200 and rated.json() == {
        "id": a["id"], "status": "closed", "rating": 5, "rating_comment": "",
    }  # fmt: skip
