"""``/api/audit/``: the audit log, for admins only (401 anonymous, 403 other roles)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import IsAdminRole
from apps.audit import serializers as s
from apps.audit.selectors import audit_event_list


class AuditEventPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500  # an event is a few hundred bytes; 500 keeps a page well under 1 MB


class AuditEventListApi(APIView):
    """Audit events, newest first, filtered by action, actor, target and date range."""

    permission_classes = (IsAdminRole,)
    pagination_class = AuditEventPagination  # also puts limit/offset and the page envelope in the schema

    @extend_schema(
        operation_id="audit_events_list",
        parameters=[s.AuditEventFilterSerializer],
        responses={
            200: s.AuditEventOutputSerializer(many=True),
            400: OpenApiResponse(s.AuditErrorSerializer, description="Invalid filter (details per field)."),
            401: OpenApiResponse(s.AuditErrorSerializer, description="Not signed in."),
            403: OpenApiResponse(s.AuditErrorSerializer, description="Only admins may read the audit log."),
        },
    )
    def get(self, request: Request) -> Response:
        filters = s.AuditEventFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(audit_event_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(s.AuditEventOutputSerializer(page, many=True).data)
