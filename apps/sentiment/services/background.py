"""Queueing Celery work after the current transaction commits (a worker never sees a row
that is not committed). ``RUN_INLINE`` (tests) runs the task body at once in this process
instead of sending it."""

from __future__ import annotations

from typing import Any

from django.db import transaction

RUN_INLINE = False


def enqueue(task_name: str, *args: Any) -> None:
    """Sends ``apps.sentiment.tasks.<task_name>`` once the transaction commits."""
    from apps.sentiment import tasks

    task = getattr(tasks, task_name)
    if RUN_INLINE:
        task(*args)
        return
    transaction.on_commit(lambda: task.delay(*args))
