"""OpenAPI documentation pieces of the mlops API: error responses and shared parameters."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from apps.mlops import serializers as s
from apps.mlops.models import ModelRole

ERROR_401 = OpenApiResponse(s.MlopsErrorSerializer, description="Not signed in.")
ERROR_403 = OpenApiResponse(s.MlopsErrorSerializer, description="The caller's role does not allow this.")
ERROR_404 = OpenApiResponse(
    s.MlopsErrorSerializer, description="No such object, or one of a role the caller may not see."
)
ERROR_400 = OpenApiResponse(s.MlopsErrorSerializer, description="Invalid input (details per field).")
ERROR_409 = OpenApiResponse(s.MlopsErrorSerializer, description="The object's state does not allow this.")
ERROR_429_JOBS = OpenApiResponse(
    s.MlopsErrorSerializer,
    description="The caller already has TRELLIS_MAX_ACTIVE_JOBS_PER_USER jobs queued or running "
    "(code too_many_active_jobs, the limit in details).",
)
AUTH_ERRORS = {401: ERROR_401, 403: ERROR_403}

ID_PARAMETER = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)
ROLE_PARAMETER = OpenApiParameter("role", OpenApiTypes.STR, OpenApiParameter.PATH, enum=ModelRole.values)
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Repeating a request with the same key returns the job the first one created.",
)
