"""Celery entry points of the knowledge base: take ids, call one service."""

from __future__ import annotations

from celery import shared_task


# Idempotent (re-chunking compares a content hash; add replaces; remove ignores absent ids): safe to retry.
@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=5, max_retries=3)
def kb_articles_index_task(article_ids: list[int], removed_chunk_ids: list[int]) -> dict:
    from apps.chat.services.index import kb_index_update

    return kb_index_update(article_ids=article_ids, removed_chunk_ids=removed_chunk_ids)


@shared_task(acks_late=True)
def kb_index_build_task() -> dict:
    from apps.chat.services.index import kb_index_build

    return kb_index_build()
