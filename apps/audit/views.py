"""The audit log page (``/audit/``), for admins: a filterable, paginated table."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.roles import Role, role_required
from apps.audit.models import AuditAction
from apps.audit.selectors import audit_event_list
from apps.audit.serializers import AuditEventFilterSerializer

PAGE_SIZE = 50


@role_required(Role.ADMIN)
def audit_index(request: HttpRequest) -> HttpResponse:
    filters = AuditEventFilterSerializer(data=request.GET)
    valid = filters.is_valid()
    events = audit_event_list(**filters.validated_data) if valid else audit_event_list().none()
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "audit/event_list.html",
        {
            "page": page,
            "filters": {key: request.GET.get(key, "") for key in AuditEventFilterSerializer().fields},
            "errors": {} if valid else filters.errors,
            "actions": AuditAction.ALL,
        },
        status=200 if valid else 400,
    )
