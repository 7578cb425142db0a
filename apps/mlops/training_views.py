"""Training data and training jobs pages: upload and inspect datasets, start, follow and cancel jobs.

Same rules as ``apps.mlops.views``: datasets and jobs of model roles the user may not see
answer 404; uploading, starting and cancelling need ``can_train_role``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.roles import role_required
from apps.mlops.forms import DatasetUploadForm, TrainingJobStartForm, trainable_role_choices
from apps.mlops.models import TRAINABLE_ROLES, Dataset, ModelRole, TrainingJob
from apps.mlops.permissions import can_see_traceback, can_train_role, visible_roles
from apps.mlops.presenters import report_view
from apps.mlops.selectors import dataset_list, job_snapshot, training_job_list
from apps.mlops.services.datasets import DatasetRejected, dataset_create
from apps.mlops.services.training import TooManyActiveJobs, training_job_cancel, training_job_create
from apps.mlops.view_helpers import ANY_ROLE, paginate, require_train, visible_or_404


@role_required(*ANY_ROLE)
def dataset_index(request: HttpRequest) -> HttpResponse:
    page, page_query = paginate(request, dataset_list(user=request.user).select_related("created_by"))
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
    page, page_query = paginate(request, dataset.jobs.select_related("model_version"))
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
    dataset = visible_or_404(dataset_list(user=request.user).select_related("created_by"), pk)
    if request.method != "POST":
        return render(request, "mlops/dataset_detail.html", _dataset_context(request, dataset, None))
    require_train(request.user, dataset.role)
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


@role_required(*ANY_ROLE)
def job_index(request: HttpRequest) -> HttpResponse:
    roles = visible_roles(request.user)
    role = request.GET.get("role")
    role = role if role in roles else None
    jobs = training_job_list(user=request.user, role=role).select_related("model_version")
    status = request.GET.get("status")
    if status in TrainingJob.Status.values:
        jobs = jobs.filter(status=status)
    page, page_query = paginate(request, jobs)
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
    job = visible_or_404(training_job_list(user=request.user).select_related("model_version", "created_by"), pk)
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
    job = visible_or_404(training_job_list(user=request.user), pk)
    require_train(request.user, job.role)
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
