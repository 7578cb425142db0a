"""Questions the knowledge base could not answer, grouped for the people who write articles.

A reply counts as unanswered when the assistant said it did not know (decision ``unknown``),
handed off because the question was out of scope or retrieval found nothing good enough
(the conversation's hand-off reason ``out_of_scope`` / ``low_retrieval``), or the customer gave
it a thumbs down. The question is the customer message before that reply.

Grouping is in two steps: questions equal after normalising (case, punctuation, spaces) are
one group; then groups whose embeddings (``model_get("embedder")``) have a cosine similarity of
at least ``SIMILARITY`` are merged, most asked first. When the embedder cannot be loaded the
page says so and keeps the first step only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.chat.models import Conversation, Message
from apps.chat.services.learning import question_before
from apps.mlops.services.serving import model_get

log = logging.getLogger(__name__)

HANDOFF_REASONS = (Conversation.HandoffReason.OUT_OF_SCOPE, Conversation.HandoffReason.LOW_RETRIEVAL)
# Measured with the bundled all-MiniLM-L6-v2: rephrasings of one question score 0.65-0.87
# ("Do you ship to Iceland?" / "Can you deliver to Iceland?" 0.86, "Can I pay with bitcoin?" /
# "Do you accept bitcoin as payment?" 0.75), different questions under 0.4 ("How do I return an
# item?" / "How long does a refund take?" 0.36). 0.7 merges the clear rephrasings only.
SIMILARITY = 0.7
# Newest replies read per request: 500 short questions embed in about a second on two idle CPU
# threads (MiniLM ~500 sentences/s); vectors are cached, so later loads embed only new ones.
MAX_REPLIES = 500
EMBED_BATCH = 64
VECTOR_CACHE_S = 7 * 24 * 3600  # a question's vector is reused for a week of page loads
MAX_VARIANTS = 3  # other phrasings shown under a group
MAX_DAYS = 365


@dataclass
class QuestionGroup:
    question: str  # the most asked phrasing (the latest of equals)
    count: int = 0
    last_asked: dt.datetime | None = None
    reasons: Counter = field(default_factory=Counter)  # unknown / thumbs_down / out_of_scope / low_retrieval
    variants: list[str] = field(default_factory=list)
    conversations: list[str] = field(default_factory=list)  # public ids, newest first

    @property
    def reason_counts(self) -> list[tuple[str, int]]:
        return sorted(self.reasons.items())

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "count": self.count,
            "last_asked": self.last_asked.isoformat() if self.last_asked else None,
            "reasons": dict(sorted(self.reasons.items())),
            "variants": self.variants,
            "conversations": self.conversations,
        }


@dataclass
class UnansweredReport:
    days: int
    groups: list[QuestionGroup]
    replies: int  # unanswered replies in the window
    scanned: int  # of which read (the newest MAX_REPLIES)
    grouping: str  # "embedding" or "text"
    grouping_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "replies": self.replies,
            "scanned": self.scanned,
            "grouping": self.grouping,
            "grouping_note": self.grouping_note,
            "similarity": SIMILARITY if self.grouping == "embedding" else None,
            "groups": [g.as_dict() for g in self.groups],
        }


def _embedder() -> Any:
    return model_get("embedder")


def window_start(days: int) -> dt.datetime:
    """The start of the window of ``days`` whole days, today included, in the site's time zone."""
    today = timezone.localdate()
    return dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time.min, tzinfo=timezone.get_current_timezone())


def unanswered_replies(*, since: dt.datetime | None = None) -> QuerySet[Message]:
    """Assistant replies that did not answer (see the module docstring)."""
    missed = (
        Q(decision=Message.Decision.UNKNOWN)
        | Q(decision=Message.Decision.HANDOFF, conversation__handoff_reason__in=HANDOFF_REASONS)
        | Q(feedback__helpful=False)
    )
    replies = Message.objects.filter(role=Message.Role.ASSISTANT).filter(missed)
    return replies.filter(created_at__gte=since) if since else replies


def normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w<>]+", " ", text.lower()).split())


def _reason(row: dict[str, Any]) -> str:
    if row["feedback__helpful"] is False:
        return "thumbs_down"
    if row["decision"] == Message.Decision.UNKNOWN:
        return "unknown"
    return row["conversation__handoff_reason"]


def _by_text(rows: list[dict[str, Any]]) -> list[QuestionGroup]:
    groups: dict[str, QuestionGroup] = {}
    for row in rows:  # newest first
        key = normalised(row["question"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = QuestionGroup(question=row["question"].strip(), last_asked=row["created_at"])
        group.count += 1
        group.reasons[_reason(row)] += 1
        public_id = str(row["conversation__public_id"])
        if public_id not in group.conversations and len(group.conversations) < 5:
            group.conversations.append(public_id)
    return sorted(groups.values(), key=lambda g: (-g.count, -g.last_asked.timestamp()))


def _vectors(texts: list[str]) -> np.ndarray:
    """L2-normalised embeddings; each text's vector is cached (per embedder version), so a page
    load embeds only the questions that are new since the last one."""
    embedder = _embedder()
    keys = [
        f"chat-unanswered-vec:{getattr(embedder, 'version', '')}:{hashlib.sha256(t.encode()).hexdigest()[:32]}"
        for t in texts
    ]
    cached = cache.get_many(keys)
    missing = [i for i, key in enumerate(keys) if key not in cached]
    if missing:
        fresh = np.asarray(embedder.embed([texts[i] for i in missing], batch_size=EMBED_BATCH), dtype=np.float32)
        new = {keys[i]: fresh[row].tobytes() for row, i in enumerate(missing)}
        cache.set_many(new, timeout=VECTOR_CACHE_S)
        cached.update(new)
    vectors = np.stack([np.frombuffer(cached[key], dtype=np.float32) for key in keys])
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _merge_similar(groups: list[QuestionGroup]) -> list[QuestionGroup]:
    """Greedy: each group joins the first (most asked) kept group it is similar enough to."""
    vectors = _vectors([normalised(g.question) for g in groups])
    kept: list[int] = []
    merged: list[QuestionGroup] = []
    for i, group in enumerate(groups):
        if kept:
            sims = vectors[kept] @ vectors[i]
            best = int(np.argmax(sims))
            if sims[best] >= SIMILARITY:
                target = merged[best]
                target.count += group.count
                target.reasons.update(group.reasons)
                target.last_asked = max(target.last_asked, group.last_asked)
                if len(target.variants) < MAX_VARIANTS:
                    target.variants.append(group.question)
                target.conversations = (target.conversations + group.conversations)[:5]
                continue
        kept.append(i)
        merged.append(group)
    return sorted(merged, key=lambda g: (-g.count, -g.last_asked.timestamp()))


def unanswered_questions(*, days: int = 30) -> UnansweredReport:
    """Grouped unanswered questions of the last ``days`` days, most asked first."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    replies = unanswered_replies(since=window_start(days))
    total = replies.count()
    rows = [
        row
        for row in replies.annotate(question=question_before())
        .values(
            "created_at",
            "decision",
            "feedback__helpful",
            "conversation__handoff_reason",
            "conversation__public_id",
            "question",
        )
        .order_by("-id")[:MAX_REPLIES]
        if (row["question"] or "").strip()
    ]
    groups = _by_text(rows)
    grouping, note = "text", ""
    if len(groups) > 1:
        try:
            groups = _merge_similar(groups)
            grouping = "embedding"
        except Exception as exc:  # a missing or broken model must not take the page down
            log.warning("unanswered questions: embedder unavailable, grouping by text only: %s", exc)
            note = f"the embedder could not be loaded ({exc.__class__.__name__}); grouped by normalised text only"
    return UnansweredReport(
        days=days, groups=groups, replies=total, scanned=len(rows), grouping=grouping, grouping_note=note
    )
