"""Celery entry points of alert delivery: fetch by id, call one service.

Imported by the worker through ``CELERY_IMPORTS`` (config/settings.py): Celery's
autodiscovery only looks for ``tasks`` modules.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.sentiment.services.delivery import alert_delivery_attempt


# One message per attempt: a failed one schedules the next with its back-off as the countdown;
# the service claims each attempt under a row lock, so a duplicated message sends nothing twice.
@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=settings.TRELLIS_SENTIMENT_ALERT_MAX_ATTEMPTS
)
def alert_delivery_send_task(self, delivery_id: int, attempts_before: int = 0) -> str:
    outcome = alert_delivery_attempt(delivery_id, attempts_before)
    if outcome.retry_in is not None:
        raise self.retry(args=(delivery_id, outcome.attempts), countdown=outcome.retry_in)
    return outcome.status
