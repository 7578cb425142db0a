"""Writing articles: create, update, publish, delete (audited), and the upsert imports use.

Every write saves the row; the ``post_save``/``post_delete`` signals queue the index task, so
the passage index follows without any request building it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import audit_record
from apps.chat.models import Article

TITLE_MAX = Article._meta.get_field("title").max_length
TAG_MAX_CHARS = 50
TAGS_MAX = 20
EDITABLE = ("title", "body", "tags", "published")


def tags_clean(value: Any) -> list[str]:
    """A list of distinct tags (order kept) from a list or a comma/semicolon separated string."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = value.replace(";", ",").split(",")
    if not isinstance(value, list | tuple):
        raise ValidationError("tags: a list of strings, or one string separated by commas.")
    tags: list[str] = []
    for raw in value:
        if not isinstance(raw, str):
            raise ValidationError("tags: every tag must be a string.")
        tag = " ".join(raw.split())
        if len(tag) > TAG_MAX_CHARS:
            raise ValidationError(f"tags: {tag[:20]!r}… is longer than {TAG_MAX_CHARS} characters.")
        if tag and tag not in tags:
            tags.append(tag)
    if len(tags) > TAGS_MAX:
        raise ValidationError(f"tags: at most {TAGS_MAX} tags.")
    return tags


def article_values_clean(values: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Checks title, body, tags, published; raises ``ValidationError`` with a readable message."""
    clean: dict[str, Any] = {}
    if "title" in values or not partial:
        title = " ".join(str(values.get("title") or "").split())
        if not title:
            raise ValidationError("title: may not be empty.")
        if len(title) > TITLE_MAX:
            raise ValidationError(f"title: at most {TITLE_MAX} characters.")
        clean["title"] = title
    if "body" in values or not partial:
        body = str(values.get("body") or "").replace("\r\n", "\n")
        if len(body) > settings.TRELLIS_KB_MAX_BODY_CHARS:
            raise ValidationError(f"body: at most {settings.TRELLIS_KB_MAX_BODY_CHARS} characters.")
        clean["body"] = body
    if "tags" in values or not partial:
        clean["tags"] = tags_clean(values.get("tags"))
    if "published" in values or not partial:
        clean["published"] = bool(values.get("published", False))
    return clean


def _audit_publish(article: Article, user: Any, request: Any) -> None:
    action = "kb_article.publish" if article.published else "kb_article.unpublish"
    audit_record(actor=user, action=action, target=article, summary=article.title, request=request)


def article_create(
    *,
    values: dict[str, Any],
    user: Any = None,
    request: Any = None,
    source_format: str = "editor",
    source_filename: str = "",
    external_id: str | None = None,
) -> Article:
    clean = article_values_clean(values)
    with transaction.atomic():
        article = Article.objects.create(
            **clean,
            source_format=source_format,
            source_filename=source_filename[:255],
            external_id=external_id or None,
            created_by=user,
            updated_by=user,
        )
        if article.published:
            _audit_publish(article, user, request)
    return article


def article_update(*, article: Article, values: dict[str, Any], user: Any = None, request: Any = None) -> Article:
    clean = article_values_clean(values, partial=True)
    was_published = article.published
    with transaction.atomic():
        for name, value in clean.items():
            setattr(article, name, value)
        article.updated_by = user if user is not None and user.is_authenticated else article.updated_by
        # Only these columns: the index task sets indexed_hash on the row, which this
        # (possibly older) instance must not overwrite.
        article.save(update_fields=[*clean, "updated_by", "updated_at"])
        if article.published != was_published:
            _audit_publish(article, user, request)
    return article


def article_delete(*, article: Article, user: Any = None, request: Any = None) -> None:
    with transaction.atomic():
        audit_record(
            actor=user,
            action="kb_article.delete",
            target=article,
            summary=article.title,
            request=request,
            details={"published": article.published, "external_id": article.external_id or ""},
        )
        article.delete()


def article_upsert(
    *, values: dict[str, Any], external_id: str | None, user: Any, source_format: str, source_filename: str
) -> tuple[Article, str]:
    """Creates or updates the article with ``external_id`` (or, without one, the same title).

    Returns:
        The article and what happened: ``created``, ``updated`` or ``unchanged``.
    """
    clean = article_values_clean(values)
    if external_id:
        existing = Article.objects.filter(external_id=external_id).first()
    else:
        existing = Article.objects.filter(title=clean["title"]).order_by("pk").first()
    if existing is None:
        return article_create(
            values=clean,
            user=user,
            source_format=source_format,
            source_filename=source_filename,
            external_id=external_id,
        ), "created"
    if all(getattr(existing, name) == clean[name] for name in EDITABLE):
        return existing, "unchanged"
    return article_update(article=existing, values=clean, user=user), "updated"
