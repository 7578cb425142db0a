"""``/api/audit/``."""

from django.urls import path

from apps.audit import api

urlpatterns = [
    path("events/", api.AuditEventListApi.as_view(), name="api-audit-events"),
]
