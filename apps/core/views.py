from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.roles import Role, user_has_role
from apps.core.health import health_report, health_summary


@method_decorator(never_cache, name="dispatch")
class HealthzApi(APIView):
    """Liveness/readiness: 200 when every dependency answers, 503 naming the check that failed.

    Anyone (a load balancer) gets the status and each check's ok flag; admins, signed in or
    with an API token, also get each check's detail and timing, which can name hosts and users.
    """

    permission_classes = (AllowAny,)
    throttle_classes = ()  # load balancers probe every few seconds from one address
    renderer_classes = (JSONRenderer,)

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        report = health_report()
        body = report if user_has_role(request.user, (Role.ADMIN,)) else health_summary(report)
        return Response(body, status=200 if report["status"] == "ok" else 503)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/home.html")


# --- OpenAPI schema and Swagger UI: signed-in users only unless TRELLIS_PUBLIC_API_DOCS.


class _ApiDocsAccess:
    def get_permissions(self) -> list[BasePermission]:
        # Read per request (not frozen at import as drf-spectacular's SERVE_PERMISSIONS is).
        return [AllowAny()] if settings.TRELLIS_PUBLIC_API_DOCS else [IsAuthenticated()]


class ApiSchemaView(_ApiDocsAccess, SpectacularAPIView):
    """The OpenAPI document; anonymous callers get 401 in the error shape."""

    def handle_exception(self, exc: Exception) -> HttpResponseBase:
        # Errors in the project's JSON shape, not rendered as an OpenAPI document (YAML).
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().handle_exception(exc)


class ApiDocsView(_ApiDocsAccess, SpectacularSwaggerSplitView):
    """Swagger UI under the site's Content-Security-Policy: the split view serves its start-up
    script as a file (``?script``), templates/drf_spectacular/swagger_ui.html has no inline style,
    and the UI's files come from this site (SWAGGER_UI_DIST "SIDECAR"). Anonymous visitors are
    sent to the login page."""

    def handle_exception(self, exc: Exception) -> HttpResponseBase:
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)
