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
from apps.mlops.models import TRAINABLE_ROLES, Dataset, ModelRole, ModelVersion, TrainingJob
from apps.mlops.permissions import can_train_role, can_view_role
from apps.mlops.selectors import dataset_list, model_version_list, role_overview, training_job_list
from apps.mlops.services.abstention import (
    AbstentionUnavailable,
    model_version_abstention_update,
    version_abstention_get,
)
from apps.mlops.services.datasets import DatasetRejected, dataset_create
from apps.mlops.services.training import TooManyActiveJobs, training_job_cancel, training_job_create
from apps.mlops.services.versions import PromotionRefused, model_version_promote, model_version_rollback

AnyRole = HasRole.of(*Role)

class MlopsPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200  # bounded pages: a job row carries its metrics history and log tail


def _paginated(
    view: APIView, request: Request, queryset: QuerySet[Any], serializer_class: type[serializers.Serializer]
) -> Response:
    paginator = MlopsPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True, context={"request": request}).data)


def _conflict(code: str, message: str, details: Any = None) -> Response:
    return Response(error_body(code, message, details), status=status.HTTP_409_CONFLICT)


def _as_drf_validation_error(exc: DjangoValidationError) -> serializers.ValidationError:
    return serializers.ValidationError({"non_field_errors": exc.messages})


def _visible_or_404(queryset: QuerySet[Any], pk: int) -> Any:
    """The object if the caller may see it; 404 otherwise (existence is not revealed)."""
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404
    return obj


def _require_train(user: Any, role: str) -> None:
    if not can_train_role(user, role):
        raise PermissionDenied(f"Your role may not train or change {role} models.")


def _role_payload(role: str, active: ModelVersion | None) -> dict[str, Any]:
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
            {**row, **_role_payload(row["role"], row["active"]), "trainable": row["role"] in TRAINABLE_ROLES}
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
            return _conflict("nothing_to_roll_back", str(exc))
        return Response(s.ModelRoleRollbackOutputSerializer(_role_payload(role, active)).data)


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
        return _paginated(self, request, qs, s.DatasetOutputSerializer)

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
        _require_train(request.user, role)
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
        dataset = _visible_or_404(dataset_list(user=request.user).select_related("created_by"), pk)
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
        return _paginated(self, request, qs, s.TrainingJobOutputSerializer)

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
        _require_train(request.user, dataset.role)
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
            raise _as_drf_validation_error(exc) from exc
        if job.dataset_id != dataset.pk:
            # The key belongs to another request: answering with that job would hand out
            # someone else's object.
            return _conflict("idempotency_key_reused", "This Idempotency-Key was used for a different request.")
        return Response(s.TrainingJobOutputSerializer(job, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)


class TrainingJobDetailApi(APIView):
    permission_classes = (AnyRole,)

    @extend_schema(
        operation_id="mlops_jobs_retrieve",
        parameters=[ID_PARAMETER],
        responses={200: s.TrainingJobOutputSerializer, 404: ERROR_404, **AUTH_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        job = _visible_or_404(_job_queryset(request.user), pk)
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
        job = _visible_or_404(_job_queryset(request.user), pk)
        _require_train(request.user, job.role)
        try:
            job = training_job_cancel(job=job, user=request.user)
        except DjangoValidationError as exc:
            return _conflict("job_finished", " ".join(exc.messages))
        return Response(s.TrainingJobOutputSerializer(job, context={"request": request}).data)


# --- model versions


def _version_queryset(user: Any) -> QuerySet[ModelVersion]:
    return model_version_list(user=user).select_related("created_by", "promoted_by", "previous_active")


class ModelVersionListApi(APIView):
    permission_classes = (AnyRole,)
    pagination_class = MlopsPagination

    @extend_schema(
        operation_id="mlops_versions_list",
        parameters=[s.ModelVersionFilterSerializer],
        responses={200: s.ModelVersionOutputSerializer(many=True), 400: ERROR_400, **AUTH_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = s.ModelVersionFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = _version_queryset(request.user)
        if filters.validated_data.get("role"):
            qs = qs.filter(role=filters.validated_data["role"])
        if filters.validated_data.get("status"):
            qs = qs.filter(status=filters.validated_data["status"])
        return _paginated(self, request, qs, s.ModelVersionOutputSerializer)


class ModelVersionDetailApi(APIView):
    permission_classes = (AnyRole,)

    @extend_schema(
        operation_id="mlops_versions_retrieve",
        parameters=[ID_PARAMETER],
        responses={200: s.ModelVersionOutputSerializer, 404: ERROR_404, **AUTH_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.ModelVersionOutputSerializer(_visible_or_404(_version_queryset(request.user), pk)).data)


class ModelVersionPromoteApi(APIView):
    """Makes a version the active one of its role, behind the evaluation gate (admins only)."""

    permission_classes = (IsAdminRole,)

    @extend_schema(
        operation_id="mlops_versions_promote",
        parameters=[ID_PARAMETER],
        request=s.ModelVersionPromoteInputSerializer,
        responses={
            200: s.ModelVersionOutputSerializer,
            400: ERROR_400,
            404: ERROR_404,
            409: OpenApiResponse(
                s.PromotionRefusedErrorSerializer,
                description="The gate refused (code promotion_refused, with both scores), or "
                "the version cannot be promoted in its state (code conflict).",
            ),
            **AUTH_ERRORS,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        version = _visible_or_404(_version_queryset(request.user), pk)
        data = s.ModelVersionPromoteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            version = model_version_promote(version=version, user=request.user, force=data.validated_data["force"],
                                            request=request)
        except PromotionRefused as exc:
            return _conflict(
                "promotion_refused",
                exc.message,
                {"candidate_score": exc.candidate_score, "active_score": exc.active_score},
            )
        except DjangoValidationError as exc:
            return _conflict("conflict", " ".join(exc.messages))
        return Response(s.ModelVersionOutputSerializer(version).data)


class ModelVersionAbstentionApi(APIView):
    """GET: a classifier version's calibration and abstention rule. PATCH: set its threshold (admins)."""

    def get_permissions(self) -> list[Any]:
        # Admin-only changes check the role before the object is looked up: 403, never 404.
        return [IsAdminRole()] if self.request.method == "PATCH" else [AnyRole()]

    @extend_schema(
        operation_id="mlops_versions_abstention_retrieve",
        parameters=[ID_PARAMETER],
        responses={200: s.ModelVersionAbstentionOutputSerializer, 404: ERROR_404, **AUTH_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        version = _visible_or_404(_version_queryset(request.user), pk)
        settings = version_abstention_get(version) or {"calibration": None, "abstention": None}
        return Response(s.ModelVersionAbstentionOutputSerializer(settings).data)

    @extend_schema(
        operation_id="mlops_versions_abstention_update",
        parameters=[ID_PARAMETER],
        request=s.ModelVersionAbstentionInputSerializer,
        responses={200: s.ModelVersionAbstentionOutputSerializer, 400: ERROR_400, 404: ERROR_404,
                   409: OpenApiResponse(s.MlopsErrorSerializer, description="Not a classifier, or its "
                                        "artifact is missing (code conflict)."), **AUTH_ERRORS},
    )
    def patch(self, request: Request, pk: int) -> Response:
        version = _visible_or_404(_version_queryset(request.user), pk)
        data = s.ModelVersionAbstentionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            settings = model_version_abstention_update(
                version=version, threshold=data.validated_data["threshold"], user=request.user, request=request)
        except DjangoValidationError as exc:
            raise _as_drf_validation_error(exc) from exc
        except AbstentionUnavailable as exc:
            return _conflict("conflict", str(exc))
        return Response(s.ModelVersionAbstentionOutputSerializer(settings).data)


class ModelVersionEvaluateApi(APIView):
    """Queues an evaluation (the version and the active one, on the same rows); 202 at once."""

    permission_classes = (AnyRole,)

    @extend_schema(
        operation_id="mlops_versions_evaluate",
        parameters=[ID_PARAMETER],
        request=s.ModelVersionEvaluateInputSerializer,
        responses={202: s.ModelVersionEvaluateOutputSerializer, 400: ERROR_400, 404: ERROR_404, **AUTH_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        from apps.mlops.tasks import model_version_evaluate_task

        version = _visible_or_404(_version_queryset(request.user), pk)
        _require_train(request.user, version.role)
        data = s.ModelVersionEvaluateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset: Dataset | None = None
        if data.validated_data.get("dataset"):
            dataset = (
                dataset_list(user=request.user, role=version.role).filter(pk=data.validated_data["dataset"]).first()
            )
            if dataset is None:
                raise serializers.ValidationError(
                    {"dataset": [f"No {version.role} dataset with id {data.validated_data['dataset']}."]}
                )
        result = model_version_evaluate_task.delay(version.pk, dataset.pk if dataset else None)
        body = {
            "version": version.pk,
            "dataset": dataset.pk if dataset else None,
            "task_id": str(result.id or ""),
            "status": "queued",
        }
        return Response(s.ModelVersionEvaluateOutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)
