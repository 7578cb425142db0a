"""ws/chat/<id>/: the assistant's reply streamed to every socket of a conversation, stopped by
``stop``, a departing customer or a take-over; resends, one reply at a time, hand-offs.

Scripted LM and intent model (tests/chat/reply_fakes.py), word-hash embedder; the real models
are in test_consumer_real.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.chat.models import Message
from apps.chat.services.articles import article_create
from apps.chat.services.reply import HANDOFF_REPLY
from tests.chat.chat_ws import (
    TIMEOUT,
    conversation_new,
    redaction_warm,
    until,
    until_type,
    user_connect,
    visitor_connect,
)
from tests.chat.reply_fakes import FakeModels, fake_models_install
from tests.core.ws import run, ticket_for

pytestmark = pytest.mark.django_db(transaction=True)  # sockets close DB connections on disconnect

RETURNS = (
    "Silver members can return items within 30 days of delivery for a full refund. "
    "Gold members can return items within 60 days of delivery."
)
QUESTION = "How many days do silver members have to return items?"
PIECES = ["Silver members can return items ", "within 30 days ", "of delivery [1]."]


@pytest.fixture(autouse=True)
def kb(settings: Any) -> None:
    redaction_warm()
    settings.TRELLIS_CHAT_MIN_PASSAGE_SCORE = 0.3  # the word-hash embedder's scale, not MiniLM's
    article_create(values={"title": "Returns policy", "body": RETURNS, "published": True})
    article_create(
        values={"title": "Shipping", "body": "Standard shipping takes three to five business days.", "published": True}
    )


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> FakeModels:
    return fake_models_install(monkeypatch)


def hold(lm: Any) -> None:
    """Makes the FakeLM wait after its first piece until ``lm.release`` is set (call in the loop)."""
    lm.hold_after, lm.release = 1, asyncio.Event()


async def stored_when(query: Any) -> Any:
    """Waits (up to TIMEOUT) for the database to hold what ``query()`` looks for; returns it."""
    for _ in range(TIMEOUT * 50):
        found = await database_sync_to_async(query)()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError("not stored in time")


def test_reply_streams_to_every_tab_and_to_the_agent_watching(fake_models: FakeModels, make_user):
    fake_models.lm.pieces = PIECES
    conversation, token = conversation_new()
    agent_ticket = ticket_for(make_user("agent"))

    async def scenario():
        tab1, _ = await visitor_connect(conversation, token)
        tab2, _ = await visitor_connect(conversation, token)
        agent, _ = await user_connect(conversation, agent_ticket)
        await tab1.send_json_to({"type": "message", "text": QUESTION, "client_id": "c-1"})
        for comm in (tab1, tab2, agent):
            frames = await until_type(comm, "message_end")
            kinds = [f["type"] for f in frames]
            assert kinds[:2] == ["message", "message_start"]
            assert frames[0]["message"]["role"] == "customer" and frames[0]["message"]["text"] == QUESTION
            tokens = [f["text"] for f in frames if f["type"] == "token"]
            assert len(tokens) == len(PIECES) and "".join(tokens) == "".join(PIECES)
            end = frames[-1]["message"]
            assert end["id"] == frames[1]["message_id"]
            assert end["completed"] is True and end["role"] == "assistant"
            assert end["sources"][0]["title"] == "Returns policy"
            assert "30 days" in end["text"]
        for comm in (tab1, tab2, agent):
            await comm.disconnect()

    run(scenario)
    assert Message.objects.filter(conversation=conversation, role="assistant", completed=True).count() == 1


def test_resent_client_id_is_not_stored_or_answered_twice(fake_models: FakeModels):
    conversation, token = conversation_new()

    async def scenario():
        comm, _ = await visitor_connect(conversation, token)
        await comm.send_json_to({"type": "message", "text": QUESTION, "client_id": "same"})
        first = (await until_type(comm, "message"))[-1]["message"]
        await until_type(comm, "message_end")
        await comm.send_json_to({"type": "message", "text": QUESTION, "client_id": "same"})
        again = await comm.receive_json_from(timeout=TIMEOUT)
        assert again == {"type": "message", "message": first}
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(scenario)
    assert Message.objects.filter(conversation=conversation, role="customer").count() == 1
    assert Message.objects.filter(conversation=conversation, role="assistant").count() == 1
    assert len(fake_models.lm.prompts) == 1


def test_a_second_message_while_answering_is_refused_with_busy_reply(fake_models: FakeModels):
    fake_models.lm.pieces = PIECES
    conversation, token = conversation_new()

    async def scenario():
        hold(fake_models.lm)
        comm, _ = await visitor_connect(conversation, token)
        await comm.send_json_to({"type": "message", "text": QUESTION, "client_id": "q1"})
        await until_type(comm, "token")
        await comm.send_json_to({"type": "message", "text": "And gold members?", "client_id": "q2"})
        busy = await comm.receive_json_from(timeout=TIMEOUT)
        assert busy["type"] == "error" and busy["code"] == "busy_reply"
        fake_models.lm.release.set()
        assert (await until_type(comm, "message_end"))[-1]["message"]["completed"] is True
        await comm.send_json_to({"type": "message", "text": "And what about gold members?", "client_id": "q2"})
        assert (await until_type(comm, "message_end"))[-1]["message"]["completed"] is True
        await comm.disconnect()

    run(scenario)
    texts = list(Message.objects.filter(conversation=conversation, role="customer").values_list("text", flat=True))
    assert texts == [QUESTION, "And what about gold members?"]


def test_stop_ends_the_reply_and_keeps_what_was_streamed(fake_models: FakeModels):
    fake_models.lm.pieces = PIECES
    conversation, token = conversation_new()

    async def scenario():
        hold(fake_models.lm)
        comm, _ = await visitor_connect(conversation, token)
        await comm.send_json_to({"type": "message", "text": QUESTION})
        await until_type(comm, "token")
        await comm.send_json_to({"type": "stop"})
        end = (await until_type(comm, "message_end"))[-1]["message"]
        assert end["completed"] is False
        assert end["text"] == PIECES[0]
        # the conversation takes the next question at once
        fake_models.lm.hold_after = None
        await comm.send_json_to({"type": "message", "text": "What about gold members returns?"})
        assert (await until_type(comm, "message_end"))[-1]["message"]["completed"] is True
        await comm.disconnect()

    run(scenario)
    assert fake_models.lm.sent == 1 + len(PIECES)  # the stopped stream never produced its rest


def test_leaving_mid_reply_cancels_it_and_reconnecting_shows_the_partial(fake_models: FakeModels):
    fake_models.lm.pieces = PIECES
    conversation, token = conversation_new()

    async def scenario():
        hold(fake_models.lm)
        comm, _ = await visitor_connect(conversation, token)
        await comm.send_json_to({"type": "message", "text": QUESTION})
        await until_type(comm, "token")
        await comm.disconnect()  # the customer's only socket
        partial = await stored_when(
            lambda: Message.objects.filter(conversation=conversation, role="assistant", completed=False)
            .exclude(text="")
            .first()
        )
        assert partial.text == PIECES[0]
        assert fake_models.lm.cancelled

        again, history = await visitor_connect(conversation, token)
        assert [m["role"] for m in history["messages"]] == ["customer", "assistant"]
        assert history["messages"][-1]["completed"] is False
        assert history["messages"][-1]["text"] == PIECES[0]
        await again.disconnect()

    run(scenario)
    assert fake_models.lm.release is not None and not fake_models.lm.release.is_set()  # never resumed


def test_agent_take_over_stops_the_assistant_and_the_agent_answers(fake_models: FakeModels, make_user):
    fake_models.lm.pieces = PIECES
    conversation, token = conversation_new()
    agent_user = make_user("agent", username="alice")
    agent_ticket = ticket_for(agent_user)

    async def scenario():
        hold(fake_models.lm)
        customer, _ = await visitor_connect(conversation, token)
        agent, _ = await user_connect(conversation, agent_ticket)
        await customer.send_json_to({"type": "message", "text": QUESTION})
        await until_type(agent, "token")
        await agent.send_json_to({"type": "take_over"})
        frames = await until_type(customer, "status")
        ends = [f for f in frames if f["type"] == "message_end"]
        assert ends and ends[0]["message"]["completed"] is False
        system = [f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "system"]
        assert system and system[0]["text"] == "You are now talking to alice"
        assert frames[-1] == {"type": "status", "status": "agent", "agent": "alice"}

        await customer.send_json_to({"type": "message", "text": "Are you a real person?"})
        echo = (await until(agent, lambda f: f["type"] == "message" and f["message"]["role"] == "customer"))[-1]
        assert echo["message"]["text"] == "Are you a real person?"
        await agent.send_json_to({"type": "message", "text": "Yes, I am Alice."})
        reply = (await until(customer, lambda f: f["type"] == "message" and f["message"]["role"] == "agent"))[-1]
        assert reply["message"]["author"] == "alice" and reply["message"]["text"] == "Yes, I am Alice."

        await agent.send_json_to({"type": "hand_back"})
        assert (await until_type(customer, "status"))[-1]["status"] == "bot"
        for comm in (customer, agent):
            await comm.disconnect()

    run(scenario)
    assert fake_models.lm.cancelled
    assert len(fake_models.lm.prompts) == 1  # nothing generated while the agent had it


def test_asking_for_a_person_hands_off(fake_models: FakeModels):
    conversation, token = conversation_new()

    async def scenario():
        comm, _ = await visitor_connect(conversation, token)
        await comm.send_json_to({"type": "message", "text": "I want to talk to a human please"})
        frames = await until_type(comm, "handoff")
        assert frames[-1] == {"type": "handoff", "reason": "asked", "status": "waiting"}
        end = [f for f in frames if f["type"] == "message_end"][0]["message"]
        assert end["text"] == HANDOFF_REPLY and end["decision"] == "handoff"
        # while waiting, messages are stored for the agent and the assistant stays quiet
        await comm.send_json_to({"type": "message", "text": "Hello? Anyone there?"})
        assert (await until_type(comm, "message"))[-1]["message"]["text"] == "Hello? Anyone there?"
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(scenario)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.handoff_reason) == ("waiting", "asked")
    assert len(fake_models.lm.prompts) == 0


def test_the_handoff_frame_asks_for_a_person(fake_models: FakeModels):
    conversation, token = conversation_new()

    async def scenario():
        comm, _ = await visitor_connect(conversation, token)
        await comm.send_json_to({"type": "handoff"})
        assert await comm.receive_json_from(timeout=TIMEOUT) == {
            "type": "handoff",
            "reason": "asked",
            "status": "waiting",
        }
        await comm.disconnect()

    run(scenario)
    conversation.refresh_from_db()
    assert conversation.status == "waiting"


def test_out_of_scope_questions_end_with_a_hand_off(fake_models: FakeModels, settings: Any):
    fake_models.intent.abstained = True  # the intent model says "none of mine"
    settings.TRELLIS_CHAT_MIN_PASSAGE_SCORE = 0.95  # word-hash buckets collide: no passage counts as close
    conversation, token = conversation_new()
    questions = [
        "What will the weather be like on Mars tomorrow?",
        "Can you recommend a good science fiction novel?",
        "Who won the football world cup in 1998?",
    ]

    async def scenario():
        comm, _ = await visitor_connect(conversation, token)
        decisions = []
        for question in questions[:2]:
            await comm.send_json_to({"type": "message", "text": question})
            decisions.append((await until_type(comm, "message_end"))[-1]["message"]["decision"])
        assert decisions == ["unknown", "unknown"]
        await comm.send_json_to({"type": "message", "text": questions[2]})
        assert (await until_type(comm, "handoff"))[-1] == {
            "type": "handoff",
            "reason": "out_of_scope",
            "status": "waiting",
        }
        await comm.disconnect()

    run(scenario)
    assert len(fake_models.lm.prompts) == 0


def test_full_lm_queue_answers_from_the_passages_at_once(fake_models: FakeModels):
    fake_models.lm.busy = True
    conversation, token = conversation_new()

    async def scenario():
        comm, _ = await visitor_connect(conversation, token)
        await comm.send_json_to({"type": "message", "text": QUESTION})
        end = (await until_type(comm, "message_end"))[-1]
        assert end["message"]["generator"] == "extractive" and "30 days" in end["message"]["text"]
        assert end["replaced"] is True
        await comm.disconnect()

    run(scenario)


async def _waiting_with_question(conversation, token):
    """A customer socket that asked for a person, then asked QUESTION."""
    customer, _ = await visitor_connect(conversation, token)
    await customer.send_json_to({"type": "handoff"})
    await until_type(customer, "handoff")
    await customer.send_json_to({"type": "message", "text": QUESTION})
    await until_type(customer, "message")
    return customer


def test_agent_draft_goes_to_that_agent_only(fake_models: FakeModels, make_user):
    fake_models.lm.pieces = ["Silver members can return items within 30 days of delivery [1]."]
    conversation, token = conversation_new()
    tickets = [ticket_for(make_user("agent")), ticket_for(make_user("agent"))]

    async def scenario():
        customer = await _waiting_with_question(conversation, token)
        writer, _ = await user_connect(conversation, tickets[0])
        other, _ = await user_connect(conversation, tickets[1])
        await writer.send_json_to({"type": "draft"})
        draft = await writer.receive_json_from(timeout=TIMEOUT)
        assert draft["type"] == "draft" and "30 days" in draft["text"]
        assert draft["sources"][0]["title"] == "Returns policy"
        assert await other.receive_nothing(timeout=0.3)
        assert await customer.receive_nothing(timeout=0.1)
        for comm in (customer, writer, other):
            await comm.disconnect()

    run(scenario)


def test_agent_draft_without_a_model_is_an_error_frame(fake_models: FakeModels, make_user, monkeypatch):
    from apps.chat.services import assist

    def unavailable(role: str):
        raise RuntimeError(f"no model serves {role}")

    monkeypatch.setattr(assist, "model_get", unavailable)
    conversation, token = conversation_new()
    ticket = ticket_for(make_user("agent"))

    async def scenario():
        customer = await _waiting_with_question(conversation, token)
        agent, _ = await user_connect(conversation, ticket)
        await agent.send_json_to({"type": "draft"})
        error = await agent.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["code"] == "model_unavailable"
        # the socket stays usable: a ping still gets its pong
        await agent.send_json_to({"type": "ping"})
        assert (await agent.receive_json_from(timeout=TIMEOUT))["type"] == "pong"
        for comm in (customer, agent):
            await comm.disconnect()

    run(scenario)
