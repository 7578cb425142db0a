"""Chat analytics: what the assistant resolved, what went to people, how fast it answered.

Every figure is a SQL aggregate (``COUNT``/``AVG`` with filters, ``TruncDate``, an ordered
``OFFSET`` for percentiles) that runs the same on SQLite and PostgreSQL; nothing loops over
messages in Python. The window is whole days in the site's time zone, today included.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django.db.models import Avg, Count, Exists, FloatField, OuterRef, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, TruncDate

from apps.chat.models import Conversation, Feedback, Message
from apps.chat.services.unanswered import unanswered_replies, window_start

MAX_DAYS = 365
TOP_INTENTS = 10
# A conversation went to a person when it has a hand-off reason or joined the queue.
HANDED_OFF = ~Q(handoff_reason="") | Q(handoff_at__isnull=False)
DEFINITIONS = {
    "resolution_rate": (
        "Closed conversations that never went to a person (for any reason, an agent taking over "
        "included) and got no thumbs down on any reply, over all closed conversations started in the window."
    ),
    "handoff_rate": "Conversations handed to a person for this reason, over all conversations started in the window.",
    "first_token": (
        "Time from the customer's message to the first streamed piece of the reply (Message.timings.first_token_ms), "
        "nearest-rank percentiles over the replies that streamed."
    ),
    "thumbs": "Thumbs up and down on replies written in the window.",
}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _per_day(conversations: QuerySet[Conversation], start: dt.datetime, days: int) -> dict[str, list]:
    counted = {
        row["day"]: row["n"]
        for row in conversations.annotate(day=TruncDate("created_at")).values("day").annotate(n=Count("id")).order_by()
    }
    labels = [start.date() + dt.timedelta(days=i) for i in range(days)]
    return {"labels": [d.isoformat() for d in labels], "counts": [counted.get(d, 0) for d in labels]}


def percentile(values: QuerySet, field: str, p: float, n: int) -> float | None:
    """Nearest-rank ``p``-th percentile of ``field`` over ``n`` rows: the value at rank ceil(p/100 * n)."""
    if not n:
        return None
    rank = max(1, math.ceil(p / 100 * n))
    return values.order_by(field).values_list(field, flat=True)[rank - 1]


def _first_token(replies: QuerySet[Message]) -> dict[str, Any]:
    timed = replies.filter(timings__has_key="first_token_ms").annotate(
        first_token_ms=Cast(KT("timings__first_token_ms"), FloatField())
    )
    n = timed.count()
    return {
        "replies": n,
        "p50_ms": percentile(timed, "first_token_ms", 50, n),
        "p95_ms": percentile(timed, "first_token_ms", 95, n),
    }


def chat_analytics(*, days: int = 30) -> dict[str, Any]:
    """The figures of the analytics page for the last ``days`` days."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    start = window_start(days)
    conversations = Conversation.objects.filter(created_at__gte=start)
    thumbs_down = Feedback.objects.filter(message__conversation_id=OuterRef("pk"), helpful=False)
    totals = conversations.annotate(thumbs_down=Exists(thumbs_down)).aggregate(
        total=Count("id"),
        closed=Count("id", filter=Q(status=Conversation.Status.CLOSED)),
        resolved=Count("id", filter=Q(status=Conversation.Status.CLOSED, thumbs_down=False) & ~HANDED_OFF),
        handed_off=Count("id", filter=HANDED_OFF),
        rated=Count("rating"),
        average_rating=Avg("rating"),
    )
    reason_labels = dict(Conversation.HandoffReason.choices)
    handoffs = [
        {
            "reason": row["handoff_reason"],
            "label": reason_labels.get(row["handoff_reason"], row["handoff_reason"]),
            "count": row["n"],
            "rate": _ratio(row["n"], totals["total"]),
        }
        for row in conversations.exclude(handoff_reason="")
        .values("handoff_reason")
        .annotate(n=Count("id"))
        .order_by("-n", "handoff_reason")
    ]
    replies = Message.objects.filter(role=Message.Role.ASSISTANT, created_at__gte=start)
    intents = [
        {"intent": row["intent"], "count": row["n"]}
        for row in replies.filter(abstained=False)
        .exclude(intent="")
        .values("intent")
        .annotate(n=Count("id"))
        .order_by("-n", "intent")[:TOP_INTENTS]
    ]
    thumbs = Feedback.objects.filter(message__created_at__gte=start).aggregate(
        up=Count("id", filter=Q(helpful=True)), down=Count("id", filter=Q(helpful=False))
    )
    rated_votes = thumbs["up"] + thumbs["down"]
    average = totals["average_rating"]
    return {
        "days": days,
        "since": start.date().isoformat(),
        "conversations": {**_per_day(conversations, start, days), "total": totals["total"]},
        "resolution": {
            "closed": totals["closed"],
            "resolved": totals["resolved"],
            "rate": _ratio(totals["resolved"], totals["closed"]),
        },
        "handoff": {
            "total": totals["handed_off"],
            "rate": _ratio(totals["handed_off"], totals["total"]),
            "by_reason": handoffs,
        },
        "first_token": _first_token(replies),
        "intents": {"top": intents, "abstained": replies.filter(abstained=True).count()},
        "thumbs": {
            **thumbs,
            "up_share": _ratio(thumbs["up"], rated_votes),
            "down_share": _ratio(thumbs["down"], rated_votes),
        },
        "rating": {"count": totals["rated"], "average": round(average, 2) if average is not None else None},
        "unanswered": unanswered_replies(since=start).count(),
        "definitions": DEFINITIONS,
    }
