"""The audit log page, mounted at ``/audit/``."""

from django.urls import path

from apps.audit import views

app_name = "audit"

urlpatterns = [
    path("", views.audit_index, name="events"),
]
