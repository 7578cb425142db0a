"""Celery entry points of sentiment: fetch by id, call one service.

Scoring tasks are safe to run twice or at once on several workers: each batch locks the
documents it scores and commits all or nothing (services/scoring.py).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from apps.sentiment.models import Source

log = logging.getLogger(__name__)

# Seconds one scoring task keeps taking batches before it returns (the beat queues the next
# one within 10 s): a backlog of 10,000 documents does not pin a worker for an hour.
SCORING_TIME_BUDGET_S = 240.0


# A locked SQLite file or a dropped PostgreSQL connection: the batch rolled back, try again.
@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=5, max_retries=5)
def documents_score_pending_task() -> dict:
    """On ingest (after commit) and every 10 s (config/celery.py)."""
    from apps.sentiment.services.scoring import documents_score_pending

    return documents_score_pending(time_budget_s=SCORING_TIME_BUDGET_S)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=5, max_retries=5)
def documents_rescore_task(version: str) -> dict:
    """Scores the history with ``version``; queues itself again until it is done."""
    from apps.sentiment.services.scoring import VersionUnavailable, documents_rescore

    try:
        result = documents_rescore(version=version, time_budget_s=SCORING_TIME_BUDGET_S)
    except VersionUnavailable as exc:
        log.error("rescoring with %s impossible: %s", version, exc)
        return {"version": version, "error": str(exc)}
    if not result["finished"]:
        documents_rescore_task.delay(version)
    return result


@shared_task
def sources_poll_due_task() -> list[int]:
    """Every 30 s (config/celery.py): queues a poll of each feed that is due."""
    from apps.sentiment.services.feeds import sources_poll_due

    return sources_poll_due()


@shared_task(acks_late=True)
def source_poll_task(source_id: int) -> dict:
    from apps.sentiment.services.feeds import feed_poll

    source = Source.objects.filter(pk=source_id, kind=Source.Kind.FEED).first()
    if source is None:
        return {"source": source_id, "status": "missing"}
    result = feed_poll(source)
    report = result.report
    return {
        "source": source_id,
        "ok": result.ok,
        "status": result.status,
        "error": result.error,
        "created": report.created if report else 0,
        "duplicates": report.duplicates if report else 0,
    }
