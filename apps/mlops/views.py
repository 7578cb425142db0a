"""Model pages: roles and versions, datasets, live training jobs.

Every page needs a role; objects of model roles the user may not see answer 404 (as if
they did not exist); training actions need ``can_train_role``, promotion and rollback
``can_promote``. The pages call the same services as the API.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.roles import Role, role_required
from apps.mlops.forms import (
    DatasetUploadForm,
    ModelVersionAbstentionForm,
    ModelVersionEvaluateForm,
    ModelVersionPromoteForm,
    TrainingJobStartForm,
    trainable_role_choices,
)
from apps.mlops.models import TRAINABLE_ROLES, Dataset, ModelRole, ModelVersion, TrainingJob
from apps.mlops.permissions import can_promote, can_see_traceback, can_train_role, can_view_role, visible_roles
from apps.mlops.presenters import abstention_view, gate_view, report_view, version_row
from apps.mlops.selectors import (
    active_version,
    dataset_list,
    job_snapshot,
    model_version_list,
    role_overview,
    training_job_list,
)
from apps.mlops.services.abstention import (
    AbstentionUnavailable,
    model_version_abstention_update,
    version_abstention_get,
)
from apps.mlops.services.datasets import DatasetRejected, dataset_create
from apps.mlops.services.explain import is_explainable
from apps.mlops.services.training import TooManyActiveJobs, training_job_cancel, training_job_create
from apps.mlops.services.versions import PromotionRefused, model_version_promote, model_version_rollback
from ml import explain as explain_limits

ANY_ROLE = tuple(Role)
RECENT_JOBS = 10
PAGE_SIZE = 25  # rows per list page; a job row is light, a version row carries its gate
EVALUATE_DATASET_CHOICES = 100  # newest datasets offered in the version page's select


def _page(request: HttpRequest, items: QuerySet[Any], param: str = "page") -> tuple[Page, str]:
    """One page of ``items`` (out-of-range numbers give the nearest page) and the query
    string of the other parameters, which the page links keep (filters)."""
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get(param))
    others = request.GET.copy()
    others.pop(param, None)
    return page, others.urlencode()


def _visible(queryset: QuerySet[Any], pk: int) -> Any:
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404("No such object.")
    return obj


def _require_train(user: Any, role: str) -> None:
    if not can_train_role(user, role):
        raise PermissionDenied(f"Your role may not train or change {role} models.")


def _require_promote(user: Any) -> None:
    if not can_promote(user):
        raise PermissionDenied("Only admins may promote or roll back models.")


def _visible_role(user: Any, role: str) -> str:
    if role not in ModelRole.values or not can_view_role(user, role):
        raise Http404("No such model role.")
    return role


# --- models and versions


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
    page, page_query = _page(request, versions)
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
    _visible_role(request.user, role)
    return render(request, "mlops/role.html", _role_context(request, role))


@role_required(*ANY_ROLE)
@require_POST
def role_rollback(request: HttpRequest, role: str) -> HttpResponse:
    _visible_role(request.user, role)
    _require_promote(request.user)
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
    version = _visible(_version_queryset(request.user), pk)
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
    version = _visible(_version_queryset(request.user), pk)
    _require_promote(request.user)
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

    version = _visible(_version_queryset(request.user), pk)
    _require_train(request.user, version.role)
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
    version = _visible(_version_queryset(request.user), pk)
    _require_promote(request.user)
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


@role_required(*ANY_ROLE)
def dataset_index(request: HttpRequest) -> HttpResponse:
    page, page_query = _page(request, dataset_list(user=request.user).select_related("created_by"))
    return render(
        request,
        "mlops/dataset_list.html",
        {
            "datasets": page,
            "page_obj": page,
            "page_query": page_query,
            "can_upload": bool(trainable_role_choices(request.user)),
        },
    )


@role_required(*ANY_ROLE)
def dataset_upload(request: HttpRequest) -> HttpResponse:
    if not trainable_role_choices(request.user):
        raise PermissionDenied("Your role cannot train any model, so it cannot upload training data.")
    report = None
    if request.method == "POST":
        form = DatasetUploadForm(request.POST, request.FILES, user=request.user)
        if form.is_valid():
            try:
                dataset = dataset_create(
                    uploaded_file=form.cleaned_data["file"],
                    name=form.cleaned_data["name"],
                    role=form.cleaned_data["role"],
                    user=request.user,
                )
            except DatasetRejected as exc:
                report = exc.report
                form.add_error("file", "The file failed validation; see the report below.")
            else:
                messages.success(request, f"Dataset {dataset.name} saved: {dataset.rows} rows.")
                return redirect("mlops:dataset", pk=dataset.pk)
        return render(request, "mlops/dataset_upload.html", {"form": form, "report": report}, status=400)
    form = DatasetUploadForm(user=request.user, initial={"role": request.GET.get("role")})
    return render(request, "mlops/dataset_upload.html", {"form": form, "report": report})


def _dataset_context(request: HttpRequest, dataset: Dataset, form: TrainingJobStartForm | None) -> dict[str, Any]:
    report = dataset.validation or {}
    counts = dataset.label_counts or {}
    largest = max(counts.values(), default=0) or 1
    page, page_query = _page(request, dataset.jobs.select_related("model_version"))
    return {
        "dataset": dataset,
        "report": report,
        "labels": [{"label": k, "count": v, "width": round(100 * v / largest)} for k, v in counts.items()],
        "jobs": page,
        "page_obj": page,
        "page_query": page_query,
        "can_train": can_train_role(request.user, dataset.role) and dataset.role in TRAINABLE_ROLES,
        "form": form if form is not None else TrainingJobStartForm(dataset=dataset),
    }


@role_required(*ANY_ROLE)
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _visible(dataset_list(user=request.user).select_related("created_by"), pk)
    if request.method != "POST":
        return render(request, "mlops/dataset_detail.html", _dataset_context(request, dataset, None))
    _require_train(request.user, dataset.role)
    form = TrainingJobStartForm(request.POST, dataset=dataset)
    if form.is_valid():
        try:
            job = training_job_create(
                dataset=dataset,
                method=form.cleaned_data["method"],
                params=form.params(),
                user=request.user,
                idempotency_key=form.cleaned_data["idempotency_key"] or None,
            )
        except TooManyActiveJobs as exc:
            form.add_error(None, exc)
            return render(request, "mlops/dataset_detail.html", _dataset_context(request, dataset, form), status=429)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Job {job.pk} queued.")
            return redirect("mlops:job", pk=job.pk)
    return render(request, "mlops/dataset_detail.html", _dataset_context(request, dataset, form), status=400)


# --- training jobs


@role_required(*ANY_ROLE)
def job_index(request: HttpRequest) -> HttpResponse:
    roles = visible_roles(request.user)
    role = request.GET.get("role")
    role = role if role in roles else None
    jobs = training_job_list(user=request.user, role=role).select_related("model_version")
    status = request.GET.get("status")
    if status in TrainingJob.Status.values:
        jobs = jobs.filter(status=status)
    page, page_query = _page(request, jobs)
    return render(
        request,
        "mlops/job_list.html",
        {
            "jobs": page,
            "page_obj": page,
            "page_query": page_query,
            "status": status,
            "statuses": TrainingJob.Status.choices,
            "role": role,
            "roles": [(r, ModelRole(r).label) for r in roles],
        },
    )


@role_required(*ANY_ROLE)
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _visible(training_job_list(user=request.user).select_related("model_version", "created_by"), pk)
    show_traceback = can_see_traceback(request.user)
    history = job.metrics_history or []
    latest_dev = next((h.get("dev") for h in reversed(history) if isinstance(h, dict) and h.get("dev")), None)
    return render(
        request,
        "mlops/job_detail.html",
        {
            "job": job,
            "snapshot": job_snapshot(job, with_traceback=show_traceback),
            "show_traceback": show_traceback,
            "dev_report": report_view(latest_dev),
            "can_cancel": can_train_role(request.user, job.role) and not job.is_finished,
            "ws_path": f"/ws/mlops/jobs/{job.pk}/",
            "version_url_template": reverse("mlops:version", kwargs={"pk": 0}),
        },
    )


@role_required(*ANY_ROLE)
@require_POST
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = _visible(training_job_list(user=request.user), pk)
    _require_train(request.user, job.role)
    try:
        job = training_job_cancel(job=job, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.info(
            request,
            "Job cancelled."
            if job.status == TrainingJob.Status.CANCELLED
            else "Cancel requested; the job stops at its next check.",
        )
    return redirect("mlops:job", pk=job.pk)
