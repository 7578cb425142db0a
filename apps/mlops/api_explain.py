"""``POST /api/mlops/versions/<id>/explain/``: which words made a classifier version choose its label.

An async view (``apps.serving.asyncapi.AsyncApiView``): the caller, the version and its
model are resolved in one worker-thread hop, then the attributions are awaited on the
process's compute lane, so a few seconds of integrated gradients never hold a thread that
other requests need. Errors come in the Trellis shape; a version of a role the caller may
not see answers 404, like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import HasRole
from apps.accounts.roles import Role
from apps.mlops import serializers as s
from apps.mlops.api_docs import AUTH_ERRORS, ERROR_404, ID_PARAMETER
from apps.mlops.selectors import model_version_list
from apps.mlops.services.explain import (
    VersionNotExplainable,
    VersionUnavailable,
    model_version_classifier,
    model_version_explain,
)
from apps.serving.asyncapi import AsyncApiView
from ml.explain import ExplainError


class NotAClassifierError(exceptions.APIException):
    status_code = 400
    default_code = "not_a_classifier"
    default_detail = "Only classifier versions can be explained."


class VersionUnavailableError(exceptions.APIException):
    status_code = 503
    default_code = "model_unavailable"
    default_detail = "This version cannot be loaded on this server."


class ModelVersionExplainApi(AsyncApiView):
    """Token attributions for texts: integrated gradients (transformers) or occlusion (heads on embeddings)."""

    permission_classes = (HasRole.of(*Role),)
    input_serializer = s.ModelVersionExplainInputSerializer

    def prepare(self, request: Request, data: Any) -> Any:
        version = model_version_list(user=request.user).filter(pk=self.kwargs["pk"]).first()
        if version is None:
            raise Http404
        try:
            return model_version_classifier(version=version)
        except VersionNotExplainable as exc:
            raise NotAClassifierError(str(exc)) from exc
        except VersionUnavailable as exc:
            raise VersionUnavailableError(str(exc)) from exc

    @extend_schema(
        operation_id="mlops_versions_explain",
        parameters=[ID_PARAMETER],
        request=s.ModelVersionExplainInputSerializer,
        responses={
            200: s.ModelVersionExplainOutputSerializer,
            400: OpenApiResponse(s.MlopsErrorSerializer, description="Invalid input: too many or too long "
                                 "texts, an unknown target label, or a version that is not a classifier."),
            404: ERROR_404,
            503: OpenApiResponse(s.MlopsErrorSerializer, description="The version's artifact cannot be loaded "
                                 "here (code model_unavailable)."),
            **AUTH_ERRORS,
        },
    )
    async def post(self, request: Request, pk: int) -> Response:
        try:
            explanations = await model_version_explain(
                classifier=self.prepared,
                texts=self.data["texts"],
                target=self.data.get("target"),
                steps=self.data["steps"],
            )
        except ExplainError as exc:
            raise serializers.ValidationError({exc.field: [exc.message]}) from exc
        return Response(s.ModelVersionExplainOutputSerializer({"version": pk, "explanations": explanations}).data)
