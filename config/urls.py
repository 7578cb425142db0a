from csp.decorators import csp_update
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from apps.core.views import ApiDocsView, ApiSchemaView
from apps.serving.docs import ApiRedocView

handler400 = "apps.core.errors.handler400"
handler403 = "apps.core.errors.handler403"
handler404 = "apps.core.errors.handler404"
handler500 = "apps.core.errors.handler500"

api_patterns = [
    path("auth/", include("apps.accounts.api_urls")),
    path("mlops/", include("apps.mlops.api_urls")),
    path("audit/", include("apps.audit.api_urls")),
    path("recommend/", include("apps.recommend.api_urls")),
    path("sentiment/", include("apps.sentiment.api_urls")),
    path("sentiment/", include("apps.sentiment.api_alerts_urls")),
    path("chat/", include("apps.chat.api_urls")),
    # Signed-in users (session or token) only, unless TRELLIS_PUBLIC_API_DOCS (apps/core/views.py).
    path("schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    # ReDoc styles its page through styled-components (inline <style>): allowed on this page only.
    path("redoc/", csp_update(ApiRedocView.csp)(ApiRedocView.as_view(url_name="api-schema")), name="api-redoc"),
]

urlpatterns = [
    path("", include("apps.core.urls")),
    path("accounts/", include("apps.accounts.urls")),
    path("models/", include("apps.mlops.urls")),
    path("audit/", include("apps.audit.urls")),
    path("recommend/", include("apps.recommend.urls")),
    path("sentiment/", include("apps.sentiment.urls")),
    path("kb/", include("apps.chat.urls")),
    path("chat/", include("apps.chat.chat_urls")),
    path("api/", include(api_patterns)),
    path("admin/", admin.site.urls),
    # The inference API: /v1/* (OpenAI-compatible) and /api/ml/* (after the routes of api/ above).
    path("", include("apps.serving.urls")),
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("core/favicon.svg")), name="favicon"),
]
