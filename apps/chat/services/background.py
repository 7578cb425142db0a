"""Queueing Celery work after the current transaction commits (a worker never sees a row
that is not committed). ``RUN_INLINE`` (tests, management commands) runs the task body at
once in this process instead. ``index_updates_batched`` gathers the index updates of many
article writes (an import) into one task."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction

RUN_INLINE = False
_batch = threading.local()


def enqueue(task_name: str, *args: Any) -> None:
    """Sends ``apps.chat.tasks.<task_name>`` once the transaction commits."""
    from apps.chat import tasks

    task = getattr(tasks, task_name)
    if RUN_INLINE:
        task(*args)
        return
    transaction.on_commit(lambda: task.delay(*args))


def article_index_queue(article_ids: list[int], removed_chunk_ids: list[int]) -> None:
    """Queues the index update for saved articles and the passages of deleted ones."""
    pending = getattr(_batch, "pending", None)
    if pending is not None:
        pending[0].extend(article_ids)
        pending[1].extend(removed_chunk_ids)
        return
    enqueue("kb_articles_index_task", list(article_ids), list(removed_chunk_ids))


@contextmanager
def index_updates_batched(*, send: bool = True) -> Iterator[None]:
    """Inside: article writes only note their ids; on the way out one task gets them all
    (none with ``send=False``: the caller builds the index itself)."""
    if getattr(_batch, "pending", None) is not None:  # nested: the outer one sends
        yield
        return
    _batch.pending = ([], [])
    try:
        yield
    finally:  # also after an error: what was written before it is indexed
        article_ids, removed = _batch.pending
        _batch.pending = None
        if send and (article_ids or removed):
            enqueue("kb_articles_index_task", sorted(set(article_ids)), sorted(set(removed)))
