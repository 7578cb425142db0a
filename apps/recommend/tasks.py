"""Celery entry points of recommend: fetch by id, call one service."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.recommend.models import CatalogueImport, EvaluationRun

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def catalogue_import_run_task(import_id: int) -> str:
    from apps.recommend.services.catalogue import catalogue_import_run

    if not CatalogueImport.objects.filter(pk=import_id).exists():
        return "missing"
    return catalogue_import_run(import_id).status


# Index updates are idempotent (add replaces, remove ignores absent ids): safe to retry.
@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=5, max_retries=3)
def item_index_update_task(item_ids: list[int]) -> dict:
    from apps.recommend.services.index import item_index_update

    return item_index_update(item_ids)


@shared_task(acks_late=True)
def item_index_build_task() -> dict:
    from apps.recommend.services.index import item_index_build

    return item_index_build()


@shared_task(acks_late=True)
def recommenders_fit_task() -> dict:
    """On demand (API, dashboard) and on the beat schedule (config/celery.py)."""
    from apps.recommend.services.engine import recommenders_fit

    return recommenders_fit()


@shared_task(acks_late=True)
def evaluation_run_task(run_id: int) -> str:
    from apps.recommend.services.evaluation import evaluation_run

    if not EvaluationRun.objects.filter(pk=run_id).exists():
        return "missing"
    return evaluation_run(run_id).status
