"""The learning loop: turn feedback on the assistant into datasets the ML core's jobs accept.

Two exports, each with counts of what was taken and what was skipped, and why:

- **intent** (role ``intent``, rows ``{"text", "label"}``): the customer message before a reply
  whose intent is known with good evidence. An agent's correction that names an intent is the
  best evidence and wins over anything else said about the same text; a reply with a thumbs up
  whose intent was confident and not abstained is the other source.
- **chat** (role ``chat-lm``, JSONL ``{"messages": [...]}``): transcripts of conversations that
  ended well (a thumbs up, a rating of 4 or 5, or an agent's correction). A corrected reply is
  replaced by the (redacted) correction; a reply with a thumbs down and no correction, or one
  that stopped early, ends the transcript before the question that led to it, so a bad answer
  is never a training target. System notices and hand-off notices are dropped; agents' replies
  become assistant turns.

Message texts are stored redacted (see ``Message``); a correction is the agent's free text, so
it goes through ``redaction.redact`` before it is exported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.files.base import ContentFile
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from apps.chat.models import Conversation, Correction, Feedback, Message
from apps.mlops.models import Dataset, ModelRole
from apps.mlops.services.datasets import DatasetRejected, dataset_create, dataset_from_rows

KINDS = ("intent", "chat")
# A thumbs up only says the answer helped, not that the intent was right: take the label only
# when the classifier itself was sure. 0.7 is above the abstention thresholds the intent
# models calibrate (0.4-0.6 on BANKING77/CLINC150), so these are the clear cases.
INTENT_MIN_CONFIDENCE = 0.7
# Fewer rows than this cannot train anything useful: 20 is ~2 examples for each of 10 intents,
# the least a stratified split can hold out one of. Two classes at least (ml.finetune.data).
MIN_INTENT_ROWS = 20
MIN_INTENT_LABELS = 2
# ml.finetune.chat_lora needs 10 conversations to hold some out for a validation loss.
MIN_TRANSCRIPTS = 10
# Conversations read per database round trip while building transcripts.
TRANSCRIPT_BATCH = 200


class ExportRejected(Exception):
    """Nothing was stored: too little data, a bad date range, or the dataset failed validation.

    ``counts`` says what was taken and skipped, so the user sees why there was too little.
    """

    def __init__(self, message: str, counts: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.counts = counts or {}


@dataclass
class ExportResult:
    kind: str
    dataset: Dataset
    created: bool  # False: the same rows were exported before; that dataset is returned
    counts: dict[str, Any] = field(default_factory=dict)


def _window(since: dt.date | None, until: dt.date | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Whole days, both ends included, in the site's time zone."""
    if since and until and since > until:
        raise ExportRejected(f"the start date {since} is after the end date {until}")
    zone = timezone.get_current_timezone()
    start = dt.datetime.combine(since, dt.time.min, tzinfo=zone) if since else None
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=zone) if until else None
    return start, end


def _in_window(qs: QuerySet, prefix: str, start: dt.datetime | None, end: dt.datetime | None) -> QuerySet:
    if start:
        qs = qs.filter(**{f"{prefix}created_at__gte": start})
    if end:
        qs = qs.filter(**{f"{prefix}created_at__lt": end})
    return qs


def question_before(message_ref: str = "id", conversation_ref: str = "conversation_id") -> Subquery:
    """The text of the last customer message before a reply (ids grow in the order rows are
    written; a reply's row is written after the question it answers)."""
    customer = Message.objects.filter(
        conversation_id=OuterRef(conversation_ref), role=Message.Role.CUSTOMER, id__lt=OuterRef(message_ref)
    ).order_by("-id")
    return Subquery(customer.values("text")[:1])


def _redact(text: str) -> str:
    from apps.chat.services.redaction import redact

    return redact(text).text


# --- intent -----------------------------------------------------------------------------------


def _intent_candidates(
    start: dt.datetime | None, end: dt.datetime | None, skipped: Counter
) -> list[tuple[str, str, str]]:
    """(source, text, label) in order of preference: corrections first, newest first."""
    found: list[tuple[str, str, str]] = []
    corrected: set[int] = set()
    corrections = _in_window(Correction.objects.all(), "message__", start, end)
    for row in (
        corrections.annotate(question=question_before("message_id", "message__conversation_id"))
        .values("message_id", "intent", "question")
        .order_by("-created_at", "-id")
    ):
        if row["message_id"] in corrected:  # the newest correction of a reply is the one that counts
            skipped["older_corrections_of_a_reply"] += 1
            continue
        corrected.add(row["message_id"])
        if not row["intent"].strip():
            skipped["correction_without_intent"] += 1
        elif not (row["question"] or "").strip():
            skipped["no_customer_question"] += 1
        else:
            found.append(("agent_corrections", row["question"], row["intent"].strip()))
    liked = _in_window(Message.objects.filter(role=Message.Role.ASSISTANT, feedback__helpful=True), "", start, end)
    for row in (
        liked.annotate(question=question_before())
        .values("id", "intent", "confidence", "abstained", "question")
        .order_by("-id")
    ):
        if row["id"] in corrected:
            skipped["thumbs_up_overruled_by_correction"] += 1
        elif not row["intent"].strip():
            skipped["thumbs_up_without_intent"] += 1
        elif row["abstained"]:
            skipped["thumbs_up_intent_abstained"] += 1
        elif row["confidence"] is None or row["confidence"] < INTENT_MIN_CONFIDENCE:
            skipped["thumbs_up_intent_not_confident"] += 1
        elif not (row["question"] or "").strip():
            skipped["no_customer_question"] += 1
        else:
            found.append(("thumbs_up", row["question"], row["intent"].strip()))
    disliked = _in_window(Message.objects.filter(role=Message.Role.ASSISTANT, feedback__helpful=False), "", start, end)
    has_correction = Exists(Correction.objects.filter(message_id=OuterRef("pk")))
    skipped["thumbs_down_without_correction"] += disliked.exclude(has_correction).count()
    return found


def intent_rows(*, since: dt.date | None = None, until: dt.date | None = None) -> tuple[list[tuple[str, str]], dict]:
    """The deduplicated ``(text, label)`` rows of the intent export and its counts."""
    start, end = _window(since, until)
    skipped: Counter = Counter()
    candidates = _intent_candidates(start, end, skipped)
    labels_of: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for source, text, label in candidates:
        labels_of[" ".join(text.split())].append((source, label))
    taken: Counter = Counter()
    rows: list[tuple[str, str]] = []
    for text, found in labels_of.items():
        from_agents = {label for source, label in found if source == "agent_corrections"}
        labels = from_agents or {label for _, label in found}
        if len(labels) > 1:
            skipped["conflicting_labels"] += len(found)
            continue
        label = labels.pop()
        winners = [
            source for source, lab in found if lab == label and (not from_agents or source == "agent_corrections")
        ]
        taken[winners[0]] += 1
        skipped["duplicates"] += len(found) - 1
        rows.append((text, label))
    rows.sort(key=lambda row: (row[1], row[0]))
    counts = {
        "rows": len(rows),
        "labels": dict(sorted(Counter(label for _, label in rows).items())),
        "taken": dict(taken),
        "skipped": {k: v for k, v in sorted(skipped.items()) if v},
    }
    return rows, counts


# --- chat transcripts -------------------------------------------------------------------------


def _conversations(start: dt.datetime | None, end: dt.datetime | None) -> QuerySet[Conversation]:
    liked = Feedback.objects.filter(message__conversation_id=OuterRef("pk"), helpful=True)
    corrected = Correction.objects.filter(message__conversation_id=OuterRef("pk"))
    qs = _in_window(Conversation.objects.all(), "", start, end)
    return qs.annotate(liked=Exists(liked), corrected=Exists(corrected)).filter(
        Q(rating__gte=4) | Q(liked=True) | Q(corrected=True)
    )


def _turns(conversation: Conversation, notes: Counter) -> list[dict[str, str]]:
    """The conversation as user/assistant turns, cut before the first bad reply."""
    turns: list[dict[str, str]] = []
    for message in conversation.messages.all():
        if message.role == Message.Role.SYSTEM:
            notes["system_messages_dropped"] += 1
            continue
        if message.role == Message.Role.CUSTOMER:
            turns.append({"role": "user", "content": message.text})
            continue
        corrections = list(message.corrections.all())  # newest first (Correction's ordering)
        feedback = getattr(message, "feedback", None)
        if corrections:
            notes["replies_replaced_by_correction"] += 1
            turns.append({"role": "assistant", "content": _redact(corrections[0].text)})
        elif feedback is not None and not feedback.helpful:
            notes["cut_at_thumbs_down"] += 1
            break
        elif not message.completed:
            notes["cut_at_incomplete_reply"] += 1
            break
        elif message.decision == Message.Decision.HANDOFF:
            notes["handoff_notices_dropped"] += 1
        else:
            turns.append({"role": "assistant", "content": message.text})
    return _merged(turns)  # after a cut, this drops the question the bad reply answered


def _merged(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """Empty turns dropped, consecutive turns of one role joined, trailing questions dropped."""
    merged: list[dict[str, str]] = []
    for turn in turns:
        content = turn["content"].strip()
        if not content:
            continue
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1]["content"] += "\n" + content
        else:
            merged.append({"role": turn["role"], "content": content})
    while merged and merged[-1]["role"] == "user":
        merged.pop()
    return merged


def chat_transcripts(*, since: dt.date | None = None, until: dt.date | None = None) -> tuple[list[dict], dict]:
    """The deduplicated transcripts of the chat export and its counts."""
    start, end = _window(since, until)
    notes: Counter = Counter()
    skipped: Counter = Counter()
    seen: set[str] = set()
    transcripts: list[dict] = []
    messages = Message.objects.select_related("feedback").prefetch_related("corrections").order_by("id")
    conversations = _conversations(start, end).filter(Q(rating__isnull=True) | Q(rating__gte=3)).order_by("id")
    skipped["low_rating"] = _conversations(start, end).filter(rating__lte=2).count()
    for conversation in conversations.prefetch_related(Prefetch("messages", queryset=messages)).iterator(
        chunk_size=TRANSCRIPT_BATCH
    ):
        turns = _turns(conversation, notes)
        if not any(t["role"] == "user" for t in turns) or not any(t["role"] == "assistant" for t in turns):
            skipped["nothing_left_after_cuts"] += 1
            continue
        key = json.dumps(turns, sort_keys=True)
        if key in seen:
            skipped["duplicates"] += 1
            continue
        seen.add(key)
        transcripts.append({"messages": turns})
    counts = {
        "rows": len(transcripts),
        "turns": sum(len(t["messages"]) for t in transcripts),
        "taken": {"conversations": len(transcripts), **{k: v for k, v in sorted(notes.items()) if v}},
        "skipped": {k: v for k, v in sorted(skipped.items()) if v},
    }
    return transcripts, counts


# --- export -----------------------------------------------------------------------------------


def _name(kind: str, since: dt.date | None, until: dt.date | None) -> str:
    span = f"{since or 'start'}..{until or timezone.localdate()}"
    return f"chat-{kind}-feedback {span}"


def _existing(role: str, body: bytes) -> bool:
    return Dataset.objects.filter(role=role, sha256=hashlib.sha256(body).hexdigest()).exists()


def dataset_export(
    *, kind: str, since: dt.date | None = None, until: dt.date | None = None, user: Any = None
) -> ExportResult:
    """Builds the ``kind`` export and stores it as an mlops Dataset; raises ExportRejected."""
    if kind not in KINDS:
        raise ExportRejected(f"unknown export {kind!r}; choose one of {', '.join(KINDS)}")
    name = _name(kind, since, until)
    try:
        if kind == "intent":
            rows, counts = intent_rows(since=since, until=until)
            if len(rows) < MIN_INTENT_ROWS or len(counts["labels"]) < MIN_INTENT_LABELS:
                raise ExportRejected(
                    f"{len(rows)} labelled messages in {len(counts['labels'])} intents; an intent dataset "
                    f"needs at least {MIN_INTENT_ROWS} in {MIN_INTENT_LABELS} intents",
                    counts,
                )
            body = "\n".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) for t, lab in rows).encode()
            created = not _existing(ModelRole.INTENT, body)
            dataset = dataset_from_rows(rows=rows, name=name, role=ModelRole.INTENT, user=user)
        else:
            transcripts, counts = chat_transcripts(since=since, until=until)
            if len(transcripts) < MIN_TRANSCRIPTS:
                raise ExportRejected(
                    f"{len(transcripts)} usable conversations; a chat dataset needs at least {MIN_TRANSCRIPTS}",
                    counts,
                )
            body = "\n".join(json.dumps(t, ensure_ascii=False) for t in transcripts).encode() + b"\n"
            created = not _existing(ModelRole.CHAT_LM, body)
            dataset = dataset_create(
                uploaded_file=ContentFile(body, name=f"{name}.jsonl"),
                name=name,
                role=ModelRole.CHAT_LM,
                user=user,
                source=Dataset.Source.FEEDBACK,
            )
    except DatasetRejected as exc:
        raise ExportRejected(f"the exported rows failed validation: {exc}", {"validation": exc.report}) from exc
    return ExportResult(kind=kind, dataset=dataset, created=created, counts=counts)


def feedback_datasets(limit: int = 20) -> QuerySet[Dataset]:
    """The latest datasets built by these exports."""
    return Dataset.objects.filter(
        source=Dataset.Source.FEEDBACK, role__in=(ModelRole.INTENT, ModelRole.CHAT_LM), name__startswith="chat-"
    ).order_by("-created_at", "-id")[:limit]
