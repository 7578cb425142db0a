"""The mlops API: thin views that validate, call one service and serialize the result.

Permissions: anonymous callers get 401, users without any role 403; objects of model
roles the caller may not see answer 404, exactly like objects that do not exist.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import HasRole, IsAdminRole
from apps.accounts.roles import Role
from apps.core.api import drf_validation_error, paginated
from apps.core.errors import error_body
from apps.mlops import serializers as s
from apps.mlops.api_docs import (
    AUTH_ERRORS,
    ERROR_400,
    ERROR_404,
    ERROR_409,
    ERROR_429_JOBS,
    ID_PARAMETER,
    IDEMPOTENCY_PARAMETER,
    ROLE_PARAMETER,
)
from apps.mlops.models import TRAINABLE_ROLES, ModelRole, ModelVersion, TrainingJob
from apps.mlops.permissions import can_train_role, can_view_role
from apps.mlops.selectors import dataset_list, role_overview, training_job_list
from apps.mlops.services.datasets import DatasetRejected, dataset_create
from apps.mlops.services.training import TooManyActiveJobs, training_job_cancel, training_job_create
from apps.mlops.services.versions import model_version_rollback

AnyRole = HasRole.of(*Role)


class MlopsPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200  # bounded pages: a job row carries its metrics history and log tail


def conflict_response(code: str, message: str, details: Any = None) -> Response:
    return Response(error_body(code, message, details), status=status.HTTP_409_CONFLICT)


def visible_or_404(queryset: QuerySet[Any], pk: int) -> Any:
    """The object if the caller may see it; 404 otherwise (existence is not revealed)."""
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404
    return obj


def require_train(user: Any, role: str) -> None:
    if not can_train_role(user, role):
        raise PermissionDenied(f"Your role may not train or change {role} models.")


def role_payload(role: str, active: ModelVersion | None) -> dict[str, Any]:
    return {"role": role, "serving": active.version if active else "default", "active": active}


# --- roles


class ModelRoleListApi(APIView):
    """Every model role the caller may see, with the version serving it."""

    permission_classes = (AnyRole,)

    @extend_schema(
        operation_id="mlops_roles_list", responses={200: s.ModelRoleOutputSerializer(many=True), **AUTH_ERRORS}
    )
    def get(self, request: Request) -> Response:
        rows = [
            {**row, **role_payload(row["role"], row["active"]), "trainable": row["role"] in TRAINABLE_ROLES}
            for row in role_overview(user=request.user)
        ]
        return Response(s.ModelRoleOutputSerializer(rows, many=True).data)


class ModelRoleRollbackApi(APIView):
    """Re-activates the version that served before the current one (admins only)."""

    permission_classes = (IsAdminRole,)

    @extend_schema(
        operation_id="mlops_roles_rollback",
        parameters=[ROLE_PARAMETER],
        request=None,
        responses={200: s.ModelRoleRollbackOutputSerializer, 404: ERROR_404, 409: ERROR_409, **AUTH_ERRORS},
    )
    def post(self, request: Request, role: str) -> Response:
        if role not in ModelRole.values or not can_view_role(request.user, role):
            raise Http404
        try:
            active = model_version_rollback(role=role, user=request.user, request=request)
        except ValueError as exc:
            return conflict_response("nothing_to_roll_back", str(exc))
        return Response(s.ModelRoleRollbackOutputSerializer(role_payload(role, active)).data)


# --- datasets


class DatasetListCreateApi(APIView):
    """Datasets of the caller's model roles; uploads are validated before anything is stored."""

    permission_classes = (AnyRole,)
    parser_classes = (MultiPartParser, FormParser)
    pagination_class = MlopsPagination  # read by drf-spectacular for the paginated list schema

    @extend_schema(
        operation_id="mlops_datasets_list",
        parameters=[s.ModelRoleFilterSerializer],
        responses={200: s.DatasetOutputSerializer(many=True), 400: ERROR_400, **AUTH_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = s.ModelRoleFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = dataset_list(user=request.user, role=filters.validated_data.get("role")).select_related("created_by")
        return paginated(self, request, qs, s.DatasetOutputSerializer, MlopsPagination, context={"request": request})

    @extend_schema(
        operation_id="mlops_datasets_create",
        request={"multipart/form-data": s.DatasetCreateInputSerializer},
        responses={
            201: s.DatasetOutputSerializer,
            400: OpenApiResponse(
                s.DatasetRejectedErrorSerializer,
                description="Invalid input, or the file failed validation "
                "(code dataset_rejected, the report in details).",
            ),
            **AUTH_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = s.DatasetCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        role = data.validated_data["role"]
        require_train(request.user, role)
        try:
            dataset = dataset_create(
                uploaded_file=data.validated_data["file"],
                name=data.validated_data["name"],
                role=role,
                user=request.user,
            )
        except DatasetRejected as exc:
            return Response(error_body("dataset_rejected", str(exc), exc.report), status=status.HTTP_400_BAD_REQUEST)
        return Response(s.DatasetOutputSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    permission_classes = (AnyRole,)

    @extend_schema(
        operation_id="mlops_datasets_retrieve",
        parameters=[ID_PARAMETER],
        responses={200: s.DatasetOutputSerializer, 404: ERROR_404, **AUTH_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        dataset = visible_or_404(dataset_list(user=request.user).select_related("created_by"), pk)
        return Response(s.DatasetOutputSerializer(dataset).data)


# --- training jobs


def _job_queryset(user: Any) -> QuerySet[TrainingJob]:
    return training_job_list(user=user).select_related("model_version", "created_by")


class TrainingJobListCreateApi(APIView):
    """Fine-tuning jobs; a new one is queued for a Celery worker and reports progress live."""

    permission_classes = (AnyRole,)
    pagination_class = MlopsPagination

    @extend_schema(
        operation_id="mlops_jobs_list",
        parameters=[s.TrainingJobFilterSerializer],
        responses={200: s.TrainingJobOutputSerializer(many=True), 400: ERROR_400, **AUTH_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = s.TrainingJobFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = _job_queryset(request.user)
        if filters.validated_data.get("role"):
            qs = qs.filter(role=filters.validated_data["role"])
        if filters.validated_data.get("status"):
            qs = qs.filter(status=filters.validated_data["status"])
        return paginated(
            self, request, qs, s.TrainingJobOutputSerializer, MlopsPagination, context={"request": request}
        )

    @extend_schema(
        operation_id="mlops_jobs_create",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.TrainingJobCreateInputSerializer,
        responses={
            201: s.TrainingJobOutputSerializer,
            400: ERROR_400,
            409: ERROR_409,
            429: ERROR_429_JOBS,
            **AUTH_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = s.TrainingJobCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip() or None
        if key and len(key) > s.IDEMPOTENCY_KEY_MAX_LENGTH:
            raise serializers.ValidationError(
                {"Idempotency-Key": [f"At most {s.IDEMPOTENCY_KEY_MAX_LENGTH} characters."]}
            )
        dataset = dataset_list(user=request.user).filter(pk=data.validated_data["dataset"]).first()
        if dataset is None:  # unknown and invisible datasets read the same
            raise serializers.ValidationError({"dataset": [f"No dataset with id {data.validated_data['dataset']}."]})
        require_train(request.user, dataset.role)
        try:
            job = training_job_create(
                dataset=dataset,
                method=data.validated_data["method"],
                params=data.params(),
                user=request.user,
                idempotency_key=key,
            )
        except TooManyActiveJobs as exc:
            return Response(
                error_body("too_many_active_jobs", exc.message, {"limit": exc.limit}),
                status=status.HTTP_429_TOO_MANY_REQUESTS,
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        if job.dataset_id != dataset.pk:
            # The key belongs to another request: answering with that job would hand out
            # someone else's object.
            return conflict_response("idempotency_key_reused", "This Idempotency-Key was used for a different request.")
        return Response(
            s.TrainingJobOutputSerializer(job, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class TrainingJobDetailApi(APIView):
    permission_classes = (AnyRole,)

    @extend_schema(
        operation_id="mlops_jobs_retrieve",
        parameters=[ID_PARAMETER],
        responses={200: s.TrainingJobOutputSerializer, 404: ERROR_404, **AUTH_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        job = visible_or_404(_job_queryset(request.user), pk)
        return Response(s.TrainingJobOutputSerializer(job, context={"request": request}).data)


class TrainingJobCancelApi(APIView):
    """Cancels a queued job, or asks a running one to stop at its next check (it checkpoints)."""

    permission_classes = (AnyRole,)

    @extend_schema(
        operation_id="mlops_jobs_cancel",
        parameters=[ID_PARAMETER],
        request=None,
        responses={200: s.TrainingJobOutputSerializer, 404: ERROR_404, 409: ERROR_409, **AUTH_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        job = visible_or_404(_job_queryset(request.user), pk)
        require_train(request.user, job.role)
        try:
            job = training_job_cancel(job=job, user=request.user)
        except DjangoValidationError as exc:
            return conflict_response("job_finished", " ".join(exc.messages))
        return Response(s.TrainingJobOutputSerializer(job, context={"request": request}).data)
