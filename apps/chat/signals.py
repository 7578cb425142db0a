"""Article changes reach the passage index through a task, whether they come from the API,
the dashboard, the admin or code. Chunk ids are collected before a delete cascades, so the
task can take them out of the index."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from apps.chat.models import Article, Chunk
from apps.chat.services.background import article_index_queue


@receiver(post_save, sender=Article)
def article_saved(sender: type[Article], instance: Article, raw: bool = False, **kwargs: Any) -> None:
    if raw:  # loaddata: the fixture's rows, indexed by a rebuild
        return
    article_index_queue([instance.pk], [])


@receiver(pre_delete, sender=Article)
def article_deleting(sender: type[Article], instance: Article, **kwargs: Any) -> None:
    instance._kb_chunk_ids = list(Chunk.objects.filter(article_id=instance.pk).values_list("pk", flat=True))


@receiver(post_delete, sender=Article)
def article_deleted(sender: type[Article], instance: Article, **kwargs: Any) -> None:
    chunk_ids = getattr(instance, "_kb_chunk_ids", [])
    if chunk_ids:
        article_index_queue([], chunk_ids)
