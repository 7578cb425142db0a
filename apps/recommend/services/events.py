"""Behaviour events: batches, idempotent by ``event_id``; anonymous sessions merged into users.

Rules (README "Recommendations"): an event naming an unknown item is rejected (reported by
its position in the batch, the others are kept), because a recommendation for an item
outside the catalogue could not be shown; an unknown user is simply a new user. An event id
seen before is answered as ``duplicate`` and changes nothing. An event carrying both a user
and a session merges the session's earlier anonymous events into that user (a login).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.recommend.models import Event, Item

FUTURE_SLACK = timedelta(minutes=5)  # clocks of shop servers drift; later than this is refused


@dataclass
class BatchResult:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]  # {"index": 3, "event_id": "...", "error": "..."}
    merged: int


def event_batch_ingest(events: list[dict[str, Any]]) -> BatchResult:
    """Stores validated events (``event_id``, ``user``, ``session``, ``item``, ``kind``, ``value``, ``ts``)."""
    rejected: list[dict[str, Any]] = []
    items = dict(Item.objects.filter(external_id__in={e["item"] for e in events}).values_list("external_id", "pk"))
    known = set(Event.objects.filter(event_id__in=[e["event_id"] for e in events]).values_list("event_id", flat=True))
    fresh: list[Event] = []
    duplicates = 0
    seen: set[str] = set()
    latest = timezone.now() + FUTURE_SLACK
    logins: set[tuple[str, str]] = set()
    for index, event in enumerate(events):
        if event["event_id"] in known or event["event_id"] in seen:
            duplicates += 1
            continue
        if event["item"] not in items:
            rejected.append({"index": index, "event_id": event["event_id"],
                             "error": f"unknown item {event['item']}: import it into the catalogue first"})
            continue
        ts: datetime = event.get("ts") or timezone.now()
        if ts > latest:
            rejected.append({"index": index, "event_id": event["event_id"], "error": "ts is in the future"})
            continue
        seen.add(event["event_id"])
        user, session = event.get("user") or "", event.get("session") or ""
        if user and session:
            logins.add((session, user))
        fresh.append(Event(event_id=event["event_id"], user_key=user, session_key=session,
                           item_id=items[event["item"]], kind=event["kind"], value=event.get("value", 1.0), ts=ts))
    with transaction.atomic():
        # Another request may store the same ids in between: those rows are skipped, not doubled.
        Event.objects.bulk_create(fresh, ignore_conflicts=True)
    accepted = len(fresh)
    merged = sum(session_merge(session_key=s, user_key=u) for s, u in sorted(logins))
    return BatchResult(accepted=accepted, duplicates=duplicates, rejected=rejected, merged=merged)


def session_merge(*, session_key: str, user_key: str) -> int:
    """Gives ``user_key`` the anonymous events of ``session_key``; returns how many."""
    if not session_key or not user_key:
        return 0
    return Event.objects.filter(session_key=session_key, user_key="").update(user_key=user_key)
