"""``/api/sentiment/``: sources, ingestion, documents, entities, watchlists, series, prices, rescoring.

(The alerts, rules, corrections and backtests are in ``api_alerts_urls.py``, under the same prefix.)
"""

from django.urls import path

from apps.sentiment import api, api_sources

urlpatterns = [
    path("sources/", api_sources.SourceListCreateApi.as_view(), name="api-sentiment-sources"),
    path("sources/<int:pk>/", api_sources.SourceDetailApi.as_view(), name="api-sentiment-source"),
    path("sources/<int:pk>/poll/", api_sources.SourcePollApi.as_view(), name="api-sentiment-source-poll"),
    path("sources/<int:pk>/documents/", api_sources.DocumentPushApi.as_view(), name="api-sentiment-source-push"),
    path("uploads/", api_sources.DocumentUploadApi.as_view(), name="api-sentiment-uploads"),
    path("documents/", api.DocumentListApi.as_view(), name="api-sentiment-documents"),
    path("documents/<int:pk>/", api.DocumentDetailApi.as_view(), name="api-sentiment-document"),
    path("entities/", api.EntityListCreateApi.as_view(), name="api-sentiment-entities"),
    path("entities/<str:symbol>/", api.EntityDetailApi.as_view(), name="api-sentiment-entity"),
    path("entities/<str:symbol>/series/", api.EntitySeriesApi.as_view(), name="api-sentiment-entity-series"),
    path("entities/<str:symbol>/prices/", api.EntityPricesApi.as_view(), name="api-sentiment-entity-prices"),
    path("prices/", api.PriceImportApi.as_view(), name="api-sentiment-prices"),
    path("watchlists/", api.WatchlistListCreateApi.as_view(), name="api-sentiment-watchlists"),
    path("watchlists/<int:pk>/", api.WatchlistDetailApi.as_view(), name="api-sentiment-watchlist"),
    path("rescore/", api.RescoreApi.as_view(), name="api-sentiment-rescore"),
]
