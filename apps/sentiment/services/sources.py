"""Sources: create, change, delete (audited). Polling lives in ``feeds``, ingestion in ``documents``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import audit_record
from apps.sentiment.models import Source
from apps.sentiment.services.documents import text_normalise

POLL_MIN_S, POLL_MAX_S = 60, 86_400  # a feed polled more than once a minute is asking for a ban
FIELDS = ("name", "kind", "url", "enabled", "poll_interval_s")


class SourceInUse(Exception):
    """The source has documents: they keep it (disable it instead)."""


def _check(source: Source) -> None:
    source.name = text_normalise(source.name or "")
    if not source.name:
        raise ValidationError("name: required")
    if source.kind == Source.Kind.FEED and not source.url:
        raise ValidationError("url: a feed source needs the feed's URL")
    if source.url and not source.url.lower().startswith(("http://", "https://")):
        raise ValidationError("url: only http and https feeds can be polled")
    if source.kind != Source.Kind.FEED and source.url:
        raise ValidationError("url: only feed sources have a URL")
    if not POLL_MIN_S <= source.poll_interval_s <= POLL_MAX_S:
        raise ValidationError(f"poll_interval_s: between {POLL_MIN_S} and {POLL_MAX_S} seconds")
    if Source.objects.filter(name__iexact=source.name).exclude(pk=source.pk).exists():
        raise ValidationError(f"name: a source named {source.name!r} exists")
    source.full_clean(validate_unique=False)


def source_create(*, values: dict[str, Any], user: Any, request: Any = None) -> Source:
    source = Source(**{k: v for k, v in values.items() if k in FIELDS}, created_by=user)
    _check(source)
    with transaction.atomic():
        source.save()
        audit_record(
            actor=user,
            action="sentiment_source.create",
            target=source,
            request=request,
            summary=f"source {source.name} ({source.kind}) created",
            details={"url": source.url},
        )
    return source


def source_update(*, source: Source, values: dict[str, Any], user: Any, request: Any = None) -> Source:
    if "kind" in values and values["kind"] != source.kind and source.documents.exists():
        raise ValidationError("kind: the source has documents; create another source instead")
    changed = {k: v for k, v in values.items() if k in FIELDS and getattr(source, k) != v}
    for name, value in changed.items():
        setattr(source, name, value)
    _check(source)
    if "url" in changed:  # another feed: its validators and history start afresh
        source.etag, source.last_modified, source.next_poll_at = "", "", None
    if changed.get("enabled") or "poll_interval_s" in changed:
        source.next_poll_at = None  # due at the next beat
    with transaction.atomic():
        source.save()
        if changed:
            audit_record(
                actor=user,
                action="sentiment_source.update",
                target=source,
                request=request,
                summary=f"source {source.name} changed: {', '.join(sorted(changed))}",
                details={k: str(v) for k, v in changed.items()},
            )
    return source


def source_delete(*, source: Source, user: Any, request: Any = None) -> None:
    if source.documents.exists():
        raise SourceInUse(f"source {source.name!r} has {source.documents.count()} documents; disable it instead")
    with transaction.atomic():
        audit_record(
            actor=user,
            action="sentiment_source.delete",
            target=source,
            request=request,
            summary=f"source {source.name} deleted",
        )
        source.delete()
