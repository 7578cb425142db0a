"""Celery entry points of mlops: fetch by id, call one service."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.mlops.models import Dataset, ModelVersion, TrainingJob
from apps.mlops.services.training import JobRunningElsewhere, training_job_requeue_stale, training_job_run
from apps.mlops.services.versions import model_version_evaluate

log = logging.getLogger(__name__)


# Retries only while another worker's heartbeat is fresh; they end when that job ends.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=1000)
def training_job_run_task(self, job_id: int) -> str:
    """Runs or resumes a job. Redelivered after a worker dies; the service resumes from checkpoints."""
    if not TrainingJob.objects.filter(pk=job_id).exists():
        log.warning("training job %s no longer exists; nothing to run", job_id)
        return "missing"
    try:
        return training_job_run(job_id).status
    except JobRunningElsewhere as busy:
        raise self.retry(countdown=busy.retry_in) from busy


@shared_task(acks_late=True)
def model_version_evaluate_task(version_id: int, dataset_id: int | None = None) -> dict:
    version = ModelVersion.objects.get(pk=version_id)
    dataset = Dataset.objects.get(pk=dataset_id) if dataset_id else None
    report = model_version_evaluate(version=version, dataset=dataset)
    return {"version": version.version, "rows": report.get("rows")}


@shared_task
def training_job_requeue_stale_task() -> int:
    return training_job_requeue_stale()
