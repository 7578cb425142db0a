from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.mlops.models import Dataset, ModelRole, ModelVersion, TrainingJob
from apps.mlops.permissions import visible_roles


def dataset_list(*, user: Any, role: str | None = None) -> QuerySet[Dataset]:
    qs = Dataset.objects.filter(role__in=visible_roles(user))
    return qs.filter(role=role) if role else qs


def training_job_list(*, user: Any, role: str | None = None) -> QuerySet[TrainingJob]:
    qs = TrainingJob.objects.filter(role__in=visible_roles(user)).select_related("dataset")
    return qs.filter(role=role) if role else qs


def model_version_list(*, user: Any, role: str | None = None) -> QuerySet[ModelVersion]:
    qs = ModelVersion.objects.filter(role__in=visible_roles(user)).select_related("training_job")
    return qs.filter(role=role) if role else qs


def active_version(role: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(role=role, status=ModelVersion.Status.ACTIVE).first()


def role_overview(*, user: Any) -> list[dict[str, Any]]:
    """Per visible role: its label, active version (None = bundled default) and counts."""
    from apps.mlops.services.serving import registry_error

    out = []
    for role in visible_roles(user):
        versions = ModelVersion.objects.filter(role=role)
        out.append({
            "role": role,
            "label": ModelRole(role).label,
            "active": versions.filter(status=ModelVersion.Status.ACTIVE).first(),
            "versions": versions.count(),
            "candidates": versions.filter(status=ModelVersion.Status.CANDIDATE).count(),
            "registry_error": registry_error(role),
        })
    return out


def job_snapshot(job: TrainingJob, *, with_traceback: bool = False) -> dict[str, Any]:
    """What the live job page and the WebSocket show of a job.

    ``error`` is one line without server paths, for every role holder; the traceback is
    added only when asked (for admins: ``permissions.can_see_traceback``). Group
    broadcasts go to every watcher, so they never carry it.
    """
    version = getattr(job, "model_version", None)
    extra = {"traceback": job.traceback} if with_traceback else {}
    return {
        "id": job.pk,
        "role": job.role,
        "method": job.method,
        "status": job.status,
        "progress": round(job.progress, 4),
        "epoch": job.epoch,
        "step": job.step,
        "total_steps": job.total_steps,
        "metrics_history": job.metrics_history,
        "log_tail": job.log_tail,
        "error": job.error,
        "attempts": job.attempts,
        "resumed_from_step": job.resumed_from_step,
        "model_version": version.pk if version else None,
        "updated_at": job.updated_at.isoformat() if job.updated_at else None,
        **extra,
    }
