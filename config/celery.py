"""The Celery app: serialisation, reliability, routes, the beat schedule, thread caps.

Docs: https://docs.celeryq.dev/en/stable/userguide/configuration.html
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("trellis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # A task is acknowledged after it finishes, and requeued when its worker dies, so a
    # killed worker loses nothing; tasks are written to be safe to run twice.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,  # long model tasks: do not hoard messages
    # Seconds. Training checks its own limits; these stop runaway tasks.
    task_soft_time_limit=int(os.environ.get("CELERY_SOFT_TIME_LIMIT", 6 * 3600)),
    task_time_limit=int(os.environ.get("CELERY_TIME_LIMIT", 6 * 3600 + 300)),
    task_track_started=True,
    task_default_queue="default",
    broker_connection_retry_on_startup=True,
    result_expires=7 * 24 * 3600,
)


def model_queue() -> str:
    """Queue for model work: ``CELERY_GPU_QUEUE`` (e.g. "gpu") when GPU workers exist."""
    from django.conf import settings

    return settings.CELERY_GPU_QUEUE or "default"


class ModelTaskRouter:
    """Sends tasks marked ``gpu`` (training, batch scoring) to the GPU queue when configured."""

    def route_for_task(self, task: str, *args: object, **kwargs: object) -> dict[str, str] | None:
        if task in GPU_TASKS:
            return {"queue": model_queue()}
        return None


# Tasks that benefit from a GPU worker; the apps add theirs here by name.
GPU_TASKS = {
    "apps.mlops.tasks.training_job_run_task",
    "apps.mlops.tasks.model_version_evaluate_task",
    "apps.sentiment.tasks.documents_score_pending_task",
    "apps.sentiment.tasks.documents_rescore_task",
}
app.conf.task_routes = (ModelTaskRouter(),)

# Periodic work, all in one place. The apps' ingestion schedules join here.
app.conf.beat_schedule = {
    "mlops-requeue-stale-jobs": {
        "task": "apps.mlops.tasks.training_job_requeue_stale_task",
        "schedule": 300.0,  # seconds
    },
    "recommend-fit": {
        "task": "apps.recommend.tasks.recommenders_fit_task",
        "schedule": 3600.0,  # refit the recommenders on the newest events hourly
    },
    "sentiment-poll-feeds": {
        "task": "apps.sentiment.tasks.sources_poll_due_task",
        "schedule": 30.0,  # each feed has its own interval (>= 60 s); this only finds the due ones
    },
    "sentiment-score-pending": {
        "task": "apps.sentiment.tasks.documents_score_pending_task",
        "schedule": 10.0,  # ingestion queues scoring itself; this catches what a dead worker left
    },
}

app.autodiscover_tasks()


@worker_init.connect  # solo/threads pools
@worker_process_init.connect  # each prefork child
def cap_torch_threads(**_: object) -> None:
    """Each worker process takes its share of the cores (``TRELLIS_TORCH_THREADS``)."""
    from ml.devices import configure_threads

    configure_threads()
