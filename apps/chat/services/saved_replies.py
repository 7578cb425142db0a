"""Saved replies: canned answers agents insert in the console (``/refund`` -> the text).

Create, update and delete are audited like knowledge-base edits; the page, the REST API and
the console all go through these functions.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from apps.audit.services import audit_record
from apps.chat.models import SavedReply

SHORTCUT_MAX = SavedReply._meta.get_field("shortcut").max_length
TITLE_MAX = SavedReply._meta.get_field("title").max_length
SHORTCUT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
EDITABLE = ("shortcut", "title", "text")


def text_max_chars() -> int:
    """A saved reply is sent as one agent message, so it obeys the message limit."""
    return settings.TRELLIS_CHAT_MAX_MESSAGE_CHARS


def saved_reply_list(*, q: str = "") -> QuerySet[SavedReply]:
    replies = SavedReply.objects.all()
    if q:
        replies = replies.filter(Q(shortcut__icontains=q) | Q(title__icontains=q) | Q(text__icontains=q))
    return replies


def saved_reply_get(pk: int) -> SavedReply | None:
    return SavedReply.objects.filter(pk=pk).first()


def saved_reply_values_clean(values: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Checks shortcut, title and text; raises ``ValidationError`` naming the field."""
    clean: dict[str, Any] = {}
    if "shortcut" in values or not partial:
        shortcut = str(values.get("shortcut") or "").strip().lstrip("/").lower()
        if not shortcut:
            raise ValidationError("shortcut: may not be empty.")
        if len(shortcut) > SHORTCUT_MAX:
            raise ValidationError(f"shortcut: at most {SHORTCUT_MAX} characters.")
        if not SHORTCUT_RE.match(shortcut):
            raise ValidationError("shortcut: lower-case letters, digits, '-' and '_' only (typed as /shortcut).")
        clean["shortcut"] = shortcut
    if "title" in values or not partial:
        title = " ".join(str(values.get("title") or "").split())
        if not title:
            raise ValidationError("title: may not be empty.")
        if len(title) > TITLE_MAX:
            raise ValidationError(f"title: at most {TITLE_MAX} characters.")
        clean["title"] = title
    if "text" in values or not partial:
        text = str(values.get("text") or "").replace("\r\n", "\n").strip()
        if not text:
            raise ValidationError("text: may not be empty.")
        limit = text_max_chars()
        if len(text) > limit:
            raise ValidationError(f"text: at most {limit} characters (the longest message an agent may send).")
        clean["text"] = text
    return clean


def _shortcut_taken(shortcut: str) -> ValidationError:
    return ValidationError(f"shortcut: /{shortcut} is already used by another saved reply.")


def saved_reply_create(*, values: dict[str, Any], user: Any = None, request: Any = None) -> SavedReply:
    clean = saved_reply_values_clean(values)
    if SavedReply.objects.filter(shortcut=clean["shortcut"]).exists():
        raise _shortcut_taken(clean["shortcut"])
    try:
        with transaction.atomic():
            reply = SavedReply.objects.create(**clean, created_by=user if getattr(user, "pk", None) else None)
            audit_record(
                actor=user,
                action="chat_saved_reply.create",
                target=reply,
                summary=f"/{reply.shortcut}",
                request=request,
            )
    except IntegrityError as exc:  # a concurrent create took the shortcut
        raise _shortcut_taken(clean["shortcut"]) from exc
    return reply


def saved_reply_update(
    *, saved_reply: SavedReply, values: dict[str, Any], user: Any = None, request: Any = None
) -> SavedReply:
    clean = saved_reply_values_clean(values, partial=True)
    shortcut = clean.get("shortcut")
    if shortcut and SavedReply.objects.filter(shortcut=shortcut).exclude(pk=saved_reply.pk).exists():
        raise _shortcut_taken(shortcut)
    changed = sorted(k for k, v in clean.items() if getattr(saved_reply, k) != v)
    if not changed:
        return saved_reply
    for key in changed:
        setattr(saved_reply, key, clean[key])
    try:
        with transaction.atomic():
            saved_reply.save(update_fields=changed)
            audit_record(
                actor=user,
                action="chat_saved_reply.update",
                target=saved_reply,
                summary=f"/{saved_reply.shortcut}",
                details={"fields": changed},
                request=request,
            )
    except IntegrityError as exc:
        raise _shortcut_taken(saved_reply.shortcut) from exc
    return saved_reply


def saved_reply_delete(*, saved_reply: SavedReply, user: Any = None, request: Any = None) -> None:
    with transaction.atomic():
        audit_record(
            actor=user,
            action="chat_saved_reply.delete",
            target=saved_reply,
            summary=f"/{saved_reply.shortcut}: {saved_reply.title}",
            request=request,
        )
        saved_reply.delete()
