"""``/api/mlops/versions/``: model versions (list, detail, promote, abstention threshold, evaluate)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import IsAdminRole
from apps.core.api import drf_validation_error, paginated
from apps.mlops import serializers as s
from apps.mlops.api import (
    AnyRole,
    MlopsPagination,
    conflict_response,
    require_train,
    visible_or_404,
)
from apps.mlops.api_docs import (
    AUTH_ERRORS,
    ERROR_400,
    ERROR_404,
    ID_PARAMETER,
)
from apps.mlops.models import Dataset, ModelVersion
from apps.mlops.selectors import dataset_list, model_version_list
from apps.mlops.services.abstention import (
    AbstentionUnavailable,
    model_version_abstention_update,
    version_abstention_get,
)
from apps.mlops.services.versions import PromotionRefused, model_version_promote

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
        return paginated(
            self, request, qs, s.ModelVersionOutputSerializer, MlopsPagination, context={"request": request}
        )


class ModelVersionDetailApi(APIView):
    permission_classes = (AnyRole,)

    @extend_schema(
        operation_id="mlops_versions_retrieve",
        parameters=[ID_PARAMETER],
        responses={200: s.ModelVersionOutputSerializer, 404: ERROR_404, **AUTH_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.ModelVersionOutputSerializer(visible_or_404(_version_queryset(request.user), pk)).data)


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
        version = visible_or_404(_version_queryset(request.user), pk)
        data = s.ModelVersionPromoteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            version = model_version_promote(
                version=version, user=request.user, force=data.validated_data["force"], request=request
            )
        except PromotionRefused as exc:
            return conflict_response(
                "promotion_refused",
                exc.message,
                {"candidate_score": exc.candidate_score, "active_score": exc.active_score},
            )
        except DjangoValidationError as exc:
            return conflict_response("conflict", " ".join(exc.messages))
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
        version = visible_or_404(_version_queryset(request.user), pk)
        settings = version_abstention_get(version) or {"calibration": None, "abstention": None}
        return Response(s.ModelVersionAbstentionOutputSerializer(settings).data)

    @extend_schema(
        operation_id="mlops_versions_abstention_update",
        parameters=[ID_PARAMETER],
        request=s.ModelVersionAbstentionInputSerializer,
        responses={
            200: s.ModelVersionAbstentionOutputSerializer,
            400: ERROR_400,
            404: ERROR_404,
            409: OpenApiResponse(
                s.MlopsErrorSerializer, description="Not a classifier, or its artifact is missing (code conflict)."
            ),
            **AUTH_ERRORS,
        },
    )
    def patch(self, request: Request, pk: int) -> Response:
        version = visible_or_404(_version_queryset(request.user), pk)
        data = s.ModelVersionAbstentionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            settings = model_version_abstention_update(
                version=version, threshold=data.validated_data["threshold"], user=request.user, request=request
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        except AbstentionUnavailable as exc:
            return conflict_response("conflict", str(exc))
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

        version = visible_or_404(_version_queryset(request.user), pk)
        require_train(request.user, version.role)
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
