"""``/api/chat/``: the knowledge base (articles, imports, search)."""

from django.urls import path

from apps.chat import api

urlpatterns = [
    path("kb/articles/", api.ArticleListCreateApi.as_view(), name="api-kb-articles"),
    path("kb/articles/<int:pk>/", api.ArticleDetailApi.as_view(), name="api-kb-article"),
    path("kb/search/", api.KbSearchApi.as_view(), name="api-kb-search"),
    path("kb/imports/", api.KbImportCreateApi.as_view(), name="api-kb-imports"),
    path("kb/imports/<int:pk>/", api.KbImportDetailApi.as_view(), name="api-kb-import"),
    path("kb/index/rebuild/", api.KbIndexRebuildApi.as_view(), name="api-kb-index-rebuild"),
]
