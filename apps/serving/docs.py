"""ReDoc at /api/redoc/, for the same audience as Swagger UI at /api/docs/."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseBase
from drf_spectacular.views import SpectacularRedocView
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated


class ApiRedocView(SpectacularRedocView):
    """ReDoc from drf-spectacular-sidecar's files (templates/drf_spectacular/redoc.html has no
    inline script or style); signed-in users only unless TRELLIS_PUBLIC_API_DOCS, like the schema."""

    # What the page adds to the site's Content-Security-Policy: ReDoc injects its styles
    # (styled-components) as <style> elements and builds its search worker from a blob.
    csp: ClassVar[dict[str, list[str]]] = {"style-src": ["'unsafe-inline'"], "worker-src": ["'self'", "blob:"]}

    def get_permissions(self) -> list[BasePermission]:
        return [AllowAny()] if settings.TRELLIS_PUBLIC_API_DOCS else [IsAuthenticated()]

    def handle_exception(self, exc: Exception) -> HttpResponseBase:
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)
