"""Model pages: roles and versions (datasets and training jobs: ``apps.mlops.training_views``).

Every page needs a role; objects of model roles the user may not see answer 404 (as if
they did not exist); training actions need ``can_train_role``, promotion and rollback
``can_promote``. The pages call the same services as the API.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.roles import role_required
from apps.mlops.forms import (
    ModelVersionAbstentionForm,
    ModelVersionEvaluateForm,
    ModelVersionPromoteForm,
    trainable_role_choices,
)
from apps.mlops.models import TRAINABLE_ROLES, Dataset, ModelRole, ModelVersion
from apps.mlops.permissions import can_promote, can_train_role
from apps.mlops.presenters import abstention_view, gate_view, report_view, version_row
from apps.mlops.selectors import (
    active_version,
    dataset_list,
    model_version_list,
    role_overview,
    training_job_list,
)
from apps.mlops.services.abstention import (
    AbstentionUnavailable,
    model_version_abstention_update,
    version_abstention_get,
)
from apps.mlops.services.explain import is_explainable
from apps.mlops.services.versions import PromotionRefused, model_version_promote, model_version_rollback
from apps.mlops.view_helpers import (
    ANY_ROLE,
    paginate,
    require_promote,
    require_train,
    visible_or_404,
    visible_role_or_404,
)
from ml import explain as explain_limits

RECENT_JOBS = 10
EVALUATE_DATASET_CHOICES = 100  # newest datasets offered in the version page's select



@role_required(*ANY_ROLE)
def models_overview(request: HttpRequest) -> HttpResponse:
    roles = []
    for row in role_overview(user=request.user):
        active = row["active"]
        roles.append(
            {**row, "trainable": row["role"] in TRAINABLE_ROLES, "metrics": version_row(active) if active else None}
        )
    jobs = training_job_list(user=request.user).select_related("model_version")[:RECENT_JOBS]
    return render(
        request,
        "mlops/models.html",
        {
            "roles": roles,
            "jobs": jobs,
            "can_upload": bool(trainable_role_choices(request.user)),
        },
    )


def _role_context(request: HttpRequest, role: str, **extra: Any) -> dict[str, Any]:
    versions = model_version_list(user=request.user, role=role).select_related("promoted_by", "previous_active")
    page, page_query = paginate(request, versions)
    active = active_version(role)
    return {
        "role": role,
        "label": ModelRole(role).label,
        "active": active,
        "rows": [version_row(v) for v in page],
        "page_obj": page,
        "page_query": page_query,
        "can_promote": can_promote(request.user),
        "can_rollback": can_promote(request.user) and active is not None,
        "rollback_target": active.previous_active if active else None,
        "trainable": role in TRAINABLE_ROLES and can_train_role(request.user, role),
        "jobs": training_job_list(user=request.user, role=role).select_related("model_version")[:RECENT_JOBS],
        "refusal": None,
        **extra,
    }


@role_required(*ANY_ROLE)
def role_detail(request: HttpRequest, role: str) -> HttpResponse:
    visible_role_or_404(request.user, role)
    return render(request, "mlops/role.html", _role_context(request, role))


@role_required(*ANY_ROLE)
@require_POST
def role_rollback(request: HttpRequest, role: str) -> HttpResponse:
    visible_role_or_404(request.user, role)
    require_promote(request.user)
    try:
        active = model_version_rollback(role=role, user=request.user, request=request)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        serving = active.version if active else "the bundled default"
        messages.success(request, f"{ModelRole(role).label} rolled back; now serving {serving}.")
    return redirect("mlops:role", role=role)


def _version_queryset(user: Any) -> QuerySet[ModelVersion]:
    return model_version_list(user=user).select_related(
        "promoted_by", "created_by", "previous_active", "training_job__dataset"
    )


def _evaluate_datasets(user: Any, role: str) -> QuerySet[Dataset]:
    """The newest datasets of ``role`` a version may be evaluated on (a bounded select)."""
    newest = dataset_list(user=user, role=role).values_list("pk", flat=True)[:EVALUATE_DATASET_CHOICES]
    return Dataset.objects.filter(pk__in=list(newest))


@role_required(*ANY_ROLE)
def version_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = visible_or_404(_version_queryset(request.user), pk)
    metrics = version.metrics or {}
    abstention = abstention_view(version_abstention_get(version), version.eval_report)
    return render(
        request,
        "mlops/version_detail.html",
        {
            "version": version,
            "row": version_row(version),
            "report": report_view(metrics),
            "dev_report": report_view(metrics.get("dev")),
            "gate": gate_view(version.eval_report),
            "note": (version.eval_report or {}).get("note"),
            "extra_metrics": {
                k.replace("_", " ").capitalize(): f"{v:.4f}" if isinstance(v, float) else v
                for k, v in metrics.items()
                if isinstance(v, int | float | str) and k not in ("accuracy", "macro_f1", "weighted_f1", "support")
            },
            "can_promote": can_promote(request.user) and version.status != ModelVersion.Status.ACTIVE,
            "can_evaluate": can_train_role(request.user, version.role),
            "promote_form": ModelVersionPromoteForm(),
            "evaluate_form": ModelVersionEvaluateForm(datasets=_evaluate_datasets(request.user, version.role)),
            "abstention": abstention,
            "explain_url": reverse("api-mlops-version-explain", args=[version.pk]) if is_explainable(version) else "",
            "explain_max_chars": explain_limits.MAX_CHARS,
            "explain_max_words": explain_limits.MAX_WORDS,
            "can_edit_abstention": can_promote(request.user) and version.kind.endswith("classifier"),
            "abstention_form": ModelVersionAbstentionForm(
                initial={"threshold": abstention["threshold"] if abstention else None}),
        },
    )


@role_required(*ANY_ROLE)
@require_POST
def version_promote(request: HttpRequest, pk: int) -> HttpResponse:
    version = visible_or_404(_version_queryset(request.user), pk)
    require_promote(request.user)
    form = ModelVersionPromoteForm(request.POST)
    force = form.is_valid() and form.cleaned_data["force"]
    try:
        version = model_version_promote(version=version, user=request.user, force=force, request=request)
    except PromotionRefused as exc:
        refusal = {
            "version": version,
            "message": exc.message,
            "candidate_score": exc.candidate_score,
            "active_score": exc.active_score,
        }
        return render(request, "mlops/role.html", _role_context(request, version.role, refusal=refusal), status=409)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("mlops:role", role=version.role)
    messages.success(
        request,
        f"{version.version} is now the active {ModelRole(version.role).label}"
        + (" (forced past the evaluation gate)." if force else "."),
    )
    return redirect("mlops:role", role=version.role)


@role_required(*ANY_ROLE)
@require_POST
def version_evaluate(request: HttpRequest, pk: int) -> HttpResponse:
    from apps.mlops.tasks import model_version_evaluate_task

    version = visible_or_404(_version_queryset(request.user), pk)
    require_train(request.user, version.role)
    form = ModelVersionEvaluateForm(request.POST, datasets=_evaluate_datasets(request.user, version.role))
    if not form.is_valid():
        messages.error(request, "Choose a dataset of this model's role, or none.")
        return redirect("mlops:version", pk=version.pk)
    dataset = form.cleaned_data.get("dataset")
    model_version_evaluate_task.delay(version.pk, dataset.pk if dataset else None)
    messages.info(request, "Evaluation queued; reload this page in a minute for the report.")
    return redirect("mlops:version", pk=version.pk)


@role_required(*ANY_ROLE)
@require_POST
def version_abstention(request: HttpRequest, pk: int) -> HttpResponse:
    version = visible_or_404(_version_queryset(request.user), pk)
    require_promote(request.user)
    form = ModelVersionAbstentionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The threshold must be a number from 0 to 1.")
        return redirect("mlops:version", pk=version.pk)
    try:
        model_version_abstention_update(version=version, threshold=form.cleaned_data["threshold"],
                                        user=request.user, request=request)
    except (ValidationError, AbstentionUnavailable) as exc:
        messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
        return redirect("mlops:version", pk=version.pk)
    messages.success(request, f"{version.version} now abstains below {form.cleaned_data['threshold']:g}.")
    return redirect("mlops:version", pk=version.pk)


# --- datasets
