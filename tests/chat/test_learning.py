"""The learning loop's exports: feedback -> intent rows and chat transcripts -> mlops datasets."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.utils import timezone

from apps.chat.models import Conversation, Correction, Feedback, Message
from apps.chat.services import learning
from apps.chat.services.learning import ExportRejected, chat_transcripts, dataset_export, intent_rows
from apps.mlops.models import Dataset

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Any) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    settings.MEDIA_ROOT = tmp_path


def _conversation(**fields: Any) -> Conversation:
    return Conversation.objects.create(**fields)


def _say(conversation: Conversation, role: str, text: str, **fields: Any) -> Message:
    return Message.objects.create(conversation=conversation, role=role, text=text, **fields)


def _exchange(
    conversation: Conversation,
    question: str,
    answer: str,
    *,
    helpful: bool | None = None,
    intent: str = "",
    confidence: float | None = None,
    **fields: Any,
) -> Message:
    _say(conversation, "customer", question)
    reply = _say(conversation, "assistant", answer, intent=intent, confidence=confidence, decision="answer", **fields)
    if helpful is not None:
        Feedback.objects.create(message=reply, helpful=helpful)
    return reply


def _liked(question: str, intent: str, confidence: float = 0.9) -> Message:
    return _exchange(_conversation(), question, "Here is how.", helpful=True, intent=intent, confidence=confidence)


# --- intent rows ----------------------------------------------------------------------------


def test_intent_rows_take_confident_thumbs_up_and_corrections_only() -> None:
    # given: every kind of evidence, good and bad
    _liked("How do I get a refund?", "refund")
    _liked("Where is my parcel?", "track_order", confidence=0.5)  # not confident
    abstained = _liked("Can I pay in bitcoin?", "payment")
    Message.objects.filter(pk=abstained.pk).update(abstained=True)
    _exchange(_conversation(), "Change my address", "Sure.", helpful=False, intent="change_address", confidence=0.99)
    wrong = _liked("I want my money back", "cancel_order")
    Correction.objects.create(message=wrong, text="Refunds take 5 days.", intent="refund")
    no_label = _exchange(_conversation(), "Is it in stock?", "Yes.", intent="stock", confidence=0.95)
    Correction.objects.create(message=no_label, text="It is sold out.")

    # when
    rows, counts = intent_rows()

    # then: the correction's label wins over the thumbs up on the same reply
    assert rows == [("How do I get a refund?", "refund"), ("I want my money back", "refund")]
    assert counts["taken"] == {"agent_corrections": 1, "thumbs_up": 1}
    assert counts["skipped"] == {
        "correction_without_intent": 1,
        "thumbs_down_without_correction": 1,
        "thumbs_up_intent_abstained": 1,
        "thumbs_up_intent_not_confident": 1,
        "thumbs_up_overruled_by_correction": 1,
    }


def test_intent_rows_dedupe_and_drop_conflicts() -> None:
    _liked("Where is my order?", "track_order")
    _liked("where is  my order?", "track_order")  # spaces are collapsed, case is kept: another row
    _liked("Where is my order?", "track_order")
    _liked("Cancel it", "cancel_order")
    _liked("Cancel it", "refund")

    rows, counts = intent_rows()

    assert rows == [("Where is my order?", "track_order"), ("where is my order?", "track_order")]
    assert counts["skipped"]["duplicates"] == 1
    assert counts["skipped"]["conflicting_labels"] == 2


def test_intent_rows_correction_beats_conflicting_thumbs_up() -> None:
    _liked("Cancel it", "refund")
    reply = _exchange(_conversation(), "Cancel it", "Done.", intent="refund", confidence=0.9)
    Correction.objects.create(message=reply, text="Refunded.", intent="refund")  # replaced by the next one
    Correction.objects.create(message=reply, text="Cancelled.", intent="cancel_order")

    rows, counts = intent_rows()

    assert rows == [("Cancel it", "cancel_order")]
    assert counts["taken"] == {"agent_corrections": 1}
    assert counts["skipped"]["older_corrections_of_a_reply"] == 1


def test_intent_export_below_minimum_is_refused_and_stores_nothing() -> None:
    for i in range(5):
        _liked(f"refund question {i}", "refund")

    with pytest.raises(ExportRejected) as caught:
        dataset_export(kind="intent")

    assert f"needs at least {learning.MIN_INTENT_ROWS}" in str(caught.value)
    assert caught.value.counts["rows"] == 5
    assert not Dataset.objects.exists()


def test_intent_export_builds_a_trainable_dataset_once(make_user: Any) -> None:
    for i in range(12):
        _liked(f"I want a refund for order number {i}", "refund")
        _liked(f"Where is parcel number {i}?", "track_order")
    agent = make_user("agent")

    first = dataset_export(kind="intent", user=agent)
    again = dataset_export(kind="intent", user=agent)

    dataset = first.dataset
    assert first.created and not again.created and again.dataset.pk == dataset.pk
    assert (dataset.role, dataset.task, dataset.source, dataset.rows) == (
        "intent",
        "text-classification",
        "feedback",
        24,
    )
    assert dataset.label_counts == {"refund": 12, "track_order": 12}
    lines = [json.loads(line) for line in dataset.file.open().read().decode().splitlines()]
    assert {"text": "Where is parcel number 3?", "label": "track_order"} in lines


def test_date_range_filters_and_checks_order() -> None:
    old = _liked("An old question", "refund")
    Message.objects.filter(conversation=old.conversation).update(created_at=timezone.now() - dt.timedelta(days=40))
    _liked("A new question", "refund")
    today = timezone.localdate()

    recent, _ = intent_rows(since=today - dt.timedelta(days=7))
    older, _ = intent_rows(until=today - dt.timedelta(days=30))

    assert recent == [("A new question", "refund")]
    assert older == [("An old question", "refund")]
    with pytest.raises(ExportRejected, match="after the end date"):
        dataset_export(kind="chat", since=today, until=today - dt.timedelta(days=1))


# --- chat transcripts -----------------------------------------------------------------------


def test_transcript_substitutes_corrections_drops_system_and_handoff_notices() -> None:
    conversation = _conversation()
    _say(conversation, "system", "An agent joined")
    _exchange(conversation, "How long do returns take?", "Returns take 30 days.", helpful=True)
    bad = _exchange(conversation, "And for gold members?", "I cannot help with that.")
    Correction.objects.create(message=bad, text="Gold members have 90 days. Mail jane.doe@example.com for labels.")
    _say(conversation, "customer", "I want a person")
    _say(conversation, "assistant", "Connecting you to a person.", decision="handoff", generator="template")
    _say(conversation, "agent", "Hi, I am here. Anything else?")

    transcripts, counts = chat_transcripts()

    assert transcripts == [
        {
            "messages": [
                {"role": "user", "content": "How long do returns take?"},
                {"role": "assistant", "content": "Returns take 30 days."},
                {"role": "user", "content": "And for gold members?"},
                {"role": "assistant", "content": "Gold members have 90 days. Mail <EMAIL> for labels."},
                {"role": "user", "content": "I want a person"},
                {"role": "assistant", "content": "Hi, I am here. Anything else?"},
            ]
        }
    ]
    assert "jane.doe@example.com" not in json.dumps(transcripts)
    assert counts["taken"]["replies_replaced_by_correction"] == 1
    assert counts["taken"]["system_messages_dropped"] == 1
    assert counts["taken"]["handoff_notices_dropped"] == 1


def test_transcript_never_contains_a_thumbs_down_reply() -> None:
    conversation = _conversation(rating=5)
    _exchange(conversation, "Do you ship to Iceland?", "Yes, in 5 days.", helpful=True)
    _exchange(conversation, "How much is shipping?", "Shipping is free on the moon.", helpful=False)
    _exchange(conversation, "Thanks", "You're welcome.")

    transcripts, counts = chat_transcripts()

    text = json.dumps(transcripts)
    assert "on the moon" not in text and "How much is shipping?" not in text  # cut before its question
    assert transcripts[0]["messages"][-1] == {"role": "assistant", "content": "Yes, in 5 days."}
    assert counts["taken"]["cut_at_thumbs_down"] == 1


def test_only_conversations_that_ended_well_are_taken() -> None:
    _exchange(_conversation(), "No signal at all", "An answer.")
    _exchange(_conversation(rating=2), "Liked but rated badly", "An answer.", helpful=True)
    _exchange(_conversation(rating=4), "Rated well", "A good answer.")
    only_bad = _conversation()
    _exchange(only_bad, "Only a bad reply", "A bad answer.", helpful=False)
    incomplete = _conversation(rating=5)
    _exchange(incomplete, "Left early", "A partial", completed=False)

    transcripts, counts = chat_transcripts()

    assert [t["messages"][0]["content"] for t in transcripts] == ["Rated well"]
    assert counts["skipped"] == {"low_rating": 1, "nothing_left_after_cuts": 1}
    assert counts["taken"]["cut_at_incomplete_reply"] == 1


def test_chat_export_min_size_then_dataset(make_user: Any) -> None:
    for i in range(learning.MIN_TRANSCRIPTS - 1):
        _exchange(_conversation(rating=5), f"Question {i}?", f"Answer {i}.")

    with pytest.raises(ExportRejected, match=f"needs at least {learning.MIN_TRANSCRIPTS}"):
        dataset_export(kind="chat")
    _exchange(_conversation(rating=5), "Question 9?", "Answer 9.")
    _exchange(_conversation(rating=5), "Question 9?", "Answer 9.")  # a duplicate transcript
    result = dataset_export(kind="chat", user=make_user("agent"))

    dataset = result.dataset
    assert (dataset.role, dataset.task, dataset.rows) == ("chat-lm", "chat-transcripts", learning.MIN_TRANSCRIPTS)
    assert result.counts["skipped"] == {"duplicates": 1}
    first = json.loads(dataset.file.open().read().decode().splitlines()[0])
    assert first == {
        "messages": [{"role": "user", "content": "Question 0?"}, {"role": "assistant", "content": "Answer 0."}]
    }


# --- API and page ---------------------------------------------------------------------------


def test_export_api_answers_counts_link_and_errors(make_user: Any, api_client: Any) -> None:
    api_client.force_authenticate(make_user("agent"))
    _liked("only one", "refund")

    refused = api_client.post("/api/chat/exports/", {"kind": "intent"}, format="json")
    bad_kind = api_client.post("/api/chat/exports/", {"kind": "sentiment"}, format="json")
    for i in range(10):
        _liked(f"refund please {i}", "refund")
        _liked(f"track parcel {i}", "track_order")
    made = api_client.post("/api/chat/exports/", {"kind": "intent", "since": "2000-01-01"}, format="json")
    same = api_client.post("/api/chat/exports/", {"kind": "intent", "since": "2000-01-01"}, format="json")

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "export_rejected"
    assert refused.json()["error"]["details"]["counts"]["rows"] == 1
    assert bad_kind.status_code == 400
    assert made.status_code == 201 and same.status_code == 200
    body = made.json()
    assert body["rows"] == 21 and body["role"] == "intent" and body["created"] is True
    assert body["dataset_url"] == f"/models/datasets/{body['dataset_id']}/"
    assert body["counts"]["taken"] == {"thumbs_up": 21}


def test_export_api_and_page_permissions(make_user: Any, api_client: Any, client: Any) -> None:
    assert api_client.post("/api/chat/exports/", {"kind": "intent"}, format="json").status_code == 401
    anonymous_page = client.get("/chat/exports/")
    assert anonymous_page.status_code == 302 and "/accounts/login/" in anonymous_page["Location"]
    analyst = make_user("analyst")
    api_client.force_authenticate(analyst)
    client.force_login(analyst)
    assert api_client.post("/api/chat/exports/", {"kind": "intent"}, format="json").status_code == 403
    assert client.get("/chat/exports/").status_code == 403


def test_export_page_shows_the_dataset_link_or_why_not(make_user: Any, client: Any) -> None:
    client.force_login(make_user("agent"))
    for i in range(learning.MIN_TRANSCRIPTS):
        _exchange(_conversation(rating=5), f"Question {i}?", f"Answer {i}.")

    refused = client.post("/chat/exports/", {"kind": "intent"})
    made = client.post("/chat/exports/", {"kind": "chat"})

    assert refused.status_code == 200 and b'id="export-rejected"' in refused.content
    assert b"needs at least" in refused.content
    dataset = Dataset.objects.get(role="chat-lm")
    assert f'href="/models/datasets/{dataset.pk}/"'.encode() in made.content
    assert b'id="export-result"' in made.content
