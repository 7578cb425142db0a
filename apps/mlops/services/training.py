"""Training jobs: create (validated, idempotent), run (resumable), cancel, requeue.

A job runs in a Celery task with ``acks_late``: if its worker dies, the broker hands the
task to another worker and ``training_job_run`` resumes from the last checkpoint (the
fine-tuning code checkpoints every epoch and every N steps). After ``MAX_ATTEMPTS`` the
job ends FAILED with the reason. A job makes at most one ModelVersion (one-to-one).

A job's folders are named by its unique ``key``, which (with the dataset's hash) is also
written into its manifest and checkpoints: a finished artifact or a checkpoint is reused
only when both are the job's own, so a reset database, a restored backup or a second
deployment on the same artifacts store can never hand a job another job's model.
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.mlops.models import TRAINABLE_ROLES, Dataset, DatasetTask, ModelVersion, TrainingJob
from apps.mlops.services.backbones import backbone_resolve
from apps.mlops.services.job_files import job_dirs, not_own, own_artifact
from apps.mlops.services.job_progress import JobReporter, job_broadcast
from apps.mlops.services.versions import HELD_OUT_FILE
from ml.artifacts import read_manifest
from ml.finetune.params import clean_params, param_specs

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# A running job silent this long lost its worker (progress is written at least every few
# seconds while training). Seconds.
HEARTBEAT_STALE = timedelta(seconds=int(os.environ.get("TRELLIS_JOB_HEARTBEAT_STALE_S", "180")))
QUEUED_STALE = timedelta(minutes=10)  # a queued job untouched this long lost its message
# Jobs that hold (or wait for) a worker; a cancelling job still runs until its next check.
ACTIVE_STATUSES = (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING, TrainingJob.Status.CANCELLING)
# An absolute server path inside an error message (shown to every role holder): replaced.
PATH_PATTERN = re.compile(r"""(?<![\w.:/~-])~?/[^\s'",;:()\[\]{}<>]+""")
ERROR_MAX_CHARS = 300

BOOLEAN_PARAMS = {"allow_new_labels"}
BASE_PARAM = "base_model"  # classifier jobs: a registered backbone (``apps.mlops.services.backbones``)


def param_task(dataset_task: str) -> str:
    """The ``ml.finetune.params`` task of a dataset: ``chat-lm`` for transcripts, else ``classifier``."""
    return "chat-lm" if dataset_task == DatasetTask.CHAT_TRANSCRIPTS else "classifier"


def job_params_from(data: dict[str, Any]) -> dict[str, Any]:
    """The training parameters a form or serializer set (unset ones left to the trainer)."""
    params = {spec.name: data[spec.name] for spec in param_specs("classifier") if data.get(spec.name) is not None}
    if data.get("allow_new_labels"):
        params["allow_new_labels"] = True
    if data.get(BASE_PARAM):
        params[BASE_PARAM] = data[BASE_PARAM]
    return params


def training_params_clean(params: dict[str, Any], task: str = "classifier") -> dict[str, Any]:
    """Checks a job's parameters against ``ml.finetune.params`` (bounds, type, task), the base
    model against the registered backbones and ``processes`` against this machine's devices.

    Raises:
        ValidationError: naming the parameter and what is accepted.
    """
    flags = {k: bool(v) for k, v in params.items() if k in BOOLEAN_PARAMS and v not in (None, "")}
    if params.get(BASE_PARAM):
        if task != "classifier":
            raise ValidationError("base_model applies to classifier jobs only; the chat LM tunes the active chat model")
        flags[BASE_PARAM] = backbone_resolve(params[BASE_PARAM])
    try:
        clean = clean_params({k: v for k, v in params.items() if k not in BOOLEAN_PARAMS | {BASE_PARAM}}, task)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    if clean.get("processes", 1) > 1:
        from ml.finetune.distributed import DevicesUnavailable, check_devices

        try:
            check_devices(clean["processes"])
        except DevicesUnavailable as exc:
            raise ValidationError(str(exc), code="devices_unavailable") from exc
    return {**clean, **flags}


def _active(role: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(role=role, status=ModelVersion.Status.ACTIVE).first()


class TooManyActiveJobs(ValidationError):
    """The user already has ``limit`` queued or running jobs (TRELLIS_MAX_ACTIVE_JOBS_PER_USER)."""

    def __init__(self, limit: int, active: int) -> None:
        self.limit = limit
        super().__init__(
            f"You already have {active} queued or running training job(s); the limit is {limit} per user "
            "(TRELLIS_MAX_ACTIVE_JOBS_PER_USER). Wait for one to finish, or cancel one.",
            code="too_many_active_jobs",
        )


def _check_active_jobs(user: Any) -> None:
    """Refuses a job over the per-user cap; call inside the transaction that creates the job.

    The user's row is locked first, so two requests of one user at once are counted one
    after the other (jobs without a user, e.g. from ``manage.py train``, are not capped).
    """
    if getattr(user, "pk", None) is None:
        return
    limit = settings.TRELLIS_MAX_ACTIVE_JOBS_PER_USER
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
    active = TrainingJob.objects.filter(created_by=user, status__in=ACTIVE_STATUSES).count()
    if active >= limit:
        raise TooManyActiveJobs(limit, active)


def training_job_create(
    *, dataset: Dataset, method: str, params: dict[str, Any], user: Any, idempotency_key: str | None = None
) -> TrainingJob:
    """Validates and queues a fine-tuning job; the same ``idempotency_key`` returns the same job.

    Raises:
        ValidationError: bad method or parameters, or labels that differ from the active model's.
        TooManyActiveJobs: the user has TRELLIS_MAX_ACTIVE_JOBS_PER_USER jobs queued or running
            (a retry with the key of one of them still returns it).
    """
    if idempotency_key:
        existing = TrainingJob.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    if dataset.role not in TRAINABLE_ROLES:
        raise ValidationError(f"role {dataset.role!r} cannot be fine-tuned")
    if method not in TrainingJob.Method.values:
        raise ValidationError(f"method must be one of {TrainingJob.Method.values}, not {method!r}")
    if dataset.task == DatasetTask.CHAT_TRANSCRIPTS and method != TrainingJob.Method.LORA:
        raise ValidationError("the chat LM is tuned with LoRA only")
    clean = training_params_clean(params, param_task(dataset.task))
    if clean.get("wise_alpha", 1.0) < 1.0 and method != TrainingJob.Method.FULL:
        raise ValidationError("wise_alpha averages a full fine-tune with its base model: use it with method full")
    active = _active(dataset.role)
    if (dataset.task == DatasetTask.TEXT_CLASSIFICATION and active is not None and active.labels
            and not clean.get("allow_new_labels") and set(active.labels) != set(dataset.label_counts)):
        raise ValidationError(
            f"the dataset's labels {sorted(dataset.label_counts)} differ from the active {dataset.role} "
            f"model's {sorted(active.labels)}; fix the data or start the job with allow_new_labels"
        )
    try:
        with transaction.atomic():
            _check_active_jobs(user)
            job = TrainingJob.objects.create(
                dataset=dataset, role=dataset.role, method=method, params=clean,
                idempotency_key=idempotency_key or None, created_by=user,
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        return TrainingJob.objects.get(idempotency_key=idempotency_key)  # the same request raced us
    transaction.on_commit(lambda: training_job_enqueue(job.pk))
    return job


def training_job_enqueue(job_id: int) -> None:
    from apps.mlops.tasks import training_job_run_task

    result = training_job_run_task.delay(job_id)
    TrainingJob.objects.filter(pk=job_id).update(celery_task_id=result.id or "")


class JobRunningElsewhere(Exception):
    """Another worker holds the job (fresh heartbeat); look again after ``retry_in`` seconds.

    A redelivered message must not be dropped here: if that worker has in fact died, its
    heartbeat goes stale and the retry takes the job over and resumes it.
    """

    def __init__(self, job_id: int, retry_in: float) -> None:
        super().__init__(f"job {job_id} is running on another worker; retry in {retry_in:.0f} s")
        self.retry_in = retry_in


def _claim(job_id: int) -> TrainingJob | None:
    """Marks the job RUNNING for this attempt, or returns None when there is nothing to do."""
    now = timezone.now()
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().select_related("dataset").get(pk=job_id)
        if job.is_finished:
            return None
        if job.status == TrainingJob.Status.CANCELLING:
            job.status, job.finished_at = TrainingJob.Status.CANCELLED, now
            job.save(update_fields=["status", "finished_at", "updated_at"])
            return None
        if (job.status == TrainingJob.Status.RUNNING and job.heartbeat_at
                and now - job.heartbeat_at < HEARTBEAT_STALE):
            retry_in = (HEARTBEAT_STALE - (now - job.heartbeat_at)).total_seconds() + 1.0
            log.warning("job %s is running elsewhere (heartbeat %s); not starting twice", job_id, job.heartbeat_at)
            raise JobRunningElsewhere(job_id, retry_in)
        if job.attempts >= MAX_ATTEMPTS:
            job.status, job.finished_at = TrainingJob.Status.FAILED, now
            job.error = f"gave up after {job.attempts} attempts: the worker running it stopped each time"
            job.save(update_fields=["status", "finished_at", "error", "updated_at"])
            return None
        job.attempts += 1
        job.status = TrainingJob.Status.RUNNING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.error = job.traceback = ""
        job.save(update_fields=["attempts", "status", "started_at", "heartbeat_at", "error", "traceback",
                                "updated_at"])
    return job


def _train(job: TrainingJob, reporter: JobReporter) -> Path:
    """Runs the fine-tuning code for the job and returns the artifact directory."""
    out_dir, ckpt_dir = job_dirs(job)
    if own_artifact(job, out_dir, reporter) is not None:
        return out_dir  # finished before the worker died: register it, do not train again
    params = dict(job.params)
    params.pop("allow_new_labels", None)
    active = _active(job.role)
    job_key = str(job.key)
    if job.dataset.task == DatasetTask.CHAT_TRANSCRIPTS:
        from apps.mlops.services.serving import registry_sync
        from ml.finetune.chat_lora import ChatLoraArgs, train_chat_lora

        base = registry_sync(job.role).active(job.role)
        base_dir = base.manifest.base_model if base.manifest.kind == "lora-causal-lm" else str(base.path)
        args = ChatLoraArgs(data=job.dataset.file.path, base_dir=base_dir, output_dir=out_dir, job_key=job_key,
                            checkpoint_dir=ckpt_dir,
                            **{k: v for k, v in params.items() if k in ChatLoraArgs.__dataclass_fields__})
        manifest = train_chat_lora(args, progress=reporter.on_event, should_stop=reporter.should_stop)
        job.resumed_from_step = int(manifest.metrics.get("resumed_from_step") or 0)
        return out_dir
    if job.method == TrainingJob.Method.FEWSHOT:
        from apps.mlops.services.serving import model_get
        from ml.finetune.fewshot import train_fewshot

        result = train_fewshot(job.dataset.file.path, role=job.role, output_dir=out_dir,
                               embedder=model_get("embedder"), seed=int(params.get("seed", 42)),
                               parent_version=active.version if active else None, progress=reporter.on_event,
                               job_key=job_key)
        _write_held_out(result.artifact_dir, result.test_rows)
        return result.artifact_dir
    from ml.finetune.classification import ClassifierTrainArgs, train_classifier

    args = ClassifierTrainArgs(
        data=job.dataset.file.path, role=job.role, output_dir=out_dir, checkpoint_dir=ckpt_dir,
        method=job.method, parent_version=active.version if active else None, job_key=job_key,
        **{k: v for k, v in params.items() if k in ClassifierTrainArgs.__dataclass_fields__},
    )
    result = train_classifier(args, progress=reporter.on_event, should_stop=reporter.should_stop)
    job.resumed_from_step = result.resumed_from_step
    _write_held_out(result.artifact_dir, result.test_rows)
    return result.artifact_dir


def _write_held_out(artifact_dir: Path, rows: list[tuple[str, str]]) -> None:
    """The evaluation gate judges later candidates and the active version on these rows."""
    held_out = "\n".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) for t, lab in rows)
    (artifact_dir / HELD_OUT_FILE).write_text(held_out + "\n", encoding="utf-8")


def training_job_run(job_id: int) -> TrainingJob:
    """Runs (or resumes) a job to the end; safe to call again for the same job.

    Raises:
        JobRunningElsewhere: another worker's heartbeat is fresh; try again later.
    """
    from ml.finetune.classification import TrainingCancelled
    from ml.finetune.data import DatasetInvalid

    job = _claim(job_id)
    if job is None:
        return TrainingJob.objects.get(pk=job_id)
    reporter = JobReporter(job)
    try:
        artifact_dir = _train(job, reporter)
    except TrainingCancelled:
        return _finish(job, TrainingJob.Status.CANCELLED, reporter, error="cancelled by a user")
    except DatasetInvalid as exc:
        job.traceback = f"dataset invalid: {exc}"  # the full report; the error keeps one line of it
        return _finish(job, TrainingJob.Status.FAILED, reporter, error=f"dataset invalid: {exc}")
    except Exception as exc:  # any failure of the training code ends the job with its reason
        log.exception("training job %s failed", job_id)
        job.traceback = traceback.format_exc()  # admins only: it names server paths
        return _finish(job, TrainingJob.Status.FAILED, reporter, error=f"{type(exc).__name__}: {exc}")
    return _register(job, artifact_dir, reporter)


def public_error(message: str) -> str:
    """The first line of ``message``, server paths replaced: what every role holder may see."""
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    first = PATH_PATTERN.sub("<path>", first)
    return first if len(first) <= ERROR_MAX_CHARS else first[: ERROR_MAX_CHARS - 1] + "\u2026"


def _register(job: TrainingJob, artifact_dir: Path, reporter: JobReporter) -> TrainingJob:
    manifest = read_manifest(artifact_dir)
    why = not_own(job, manifest)
    if why is not None:  # never expected: the trainers write the job's key and data hash
        job.traceback = f"artifact {artifact_dir} refused: {why} (job_key {manifest.job_key!r})"
        return _finish(job, TrainingJob.Status.FAILED, reporter, error=f"the trained model was refused: {why}")
    with transaction.atomic():
        ModelVersion.objects.get_or_create(
            training_job=job,
            defaults={
                "role": job.role, "version": manifest.version, "kind": manifest.kind,
                "artifact_path": str(artifact_dir), "base_model": manifest.base_model,
                "labels": manifest.labels, "metrics": manifest.metrics, "created_by": job.created_by,
            },
        )
        reporter.log(f"model version {manifest.version} registered as a candidate")
        job.progress = 1.0
        return _finish(job, TrainingJob.Status.SUCCEEDED, reporter)


def _finish(job: TrainingJob, status: str, reporter: JobReporter, error: str = "") -> TrainingJob:
    job.status, job.error, job.finished_at = status, public_error(error), timezone.now()
    if job.error:
        reporter.log(job.error)
    reporter.flush()
    job.save(update_fields=["status", "error", "traceback", "finished_at", "progress", "resumed_from_step",
                            "updated_at"])
    job_broadcast(job)
    return job


def training_job_cancel(*, job: TrainingJob, user: Any) -> TrainingJob:
    """Asks a queued or running job to stop (it checkpoints first, so it could resume)."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            raise ValidationError(f"job {job.pk} already ended ({job.status})")
        if job.status == TrainingJob.Status.QUEUED:
            job.status, job.finished_at = TrainingJob.Status.CANCELLED, timezone.now()
        else:
            job.status = TrainingJob.Status.CANCELLING
        job.log_tail = (job.log_tail + f"\ncancel requested by {getattr(user, 'username', 'system')}").strip()
        job.save(update_fields=["status", "finished_at", "log_tail", "updated_at"])
    job_broadcast(job)
    return job


def training_job_requeue_stale() -> int:
    """Requeues jobs whose worker or message was lost (a periodic safety net)."""
    now = timezone.now()
    stale_running = TrainingJob.objects.filter(status=TrainingJob.Status.RUNNING,
                                               heartbeat_at__lt=now - HEARTBEAT_STALE)
    stale_queued = TrainingJob.objects.filter(status=TrainingJob.Status.QUEUED,
                                              updated_at__lt=now - QUEUED_STALE)
    ids = list(stale_running.values_list("pk", flat=True)) + list(stale_queued.values_list("pk", flat=True))
    for job_id in ids:
        TrainingJob.objects.filter(pk=job_id).update(updated_at=now)
        training_job_enqueue(job_id)
    return len(ids)
