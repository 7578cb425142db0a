"""``/api/recommend/``: catalogue, events, recommendations, A/B tests, evaluations, widget."""

from django.urls import path

from apps.recommend import api, widget_api

urlpatterns = [
    path("items/", api.ItemListCreateApi.as_view(), name="api-recommend-items"),
    path("items/<str:external_id>/", api.ItemDetailApi.as_view(), name="api-recommend-item"),
    path("items/<str:external_id>/similar/", api.ItemSimilarApi.as_view(), name="api-recommend-item-similar"),
    path("imports/", api.CatalogueImportCreateApi.as_view(), name="api-recommend-imports"),
    path("imports/<int:pk>/", api.CatalogueImportDetailApi.as_view(), name="api-recommend-import"),
    path("events/", api.EventBatchApi.as_view(), name="api-recommend-events"),
    path("sessions/merge/", api.SessionMergeApi.as_view(), name="api-recommend-session-merge"),
    path("clicks/", api.ClickApi.as_view(), name="api-recommend-clicks"),
    path("users/<str:user_key>/recommendations/", api.UserRecommendationsApi.as_view(),
         name="api-recommend-user-recommendations"),
    path("index/rebuild/", api.IndexRebuildApi.as_view(), name="api-recommend-index-rebuild"),
    path("fit/", api.FitApi.as_view(), name="api-recommend-fit"),
    path("abtests/", api.ABTestListCreateApi.as_view(), name="api-recommend-abtests"),
    path("abtests/<int:pk>/", api.ABTestDetailApi.as_view(), name="api-recommend-abtest"),
    path("abtests/<int:pk>/stop/", api.ABTestStopApi.as_view(), name="api-recommend-abtest-stop"),
    path("evaluations/", api.EvaluationListCreateApi.as_view(), name="api-recommend-evaluations"),
    path("evaluations/<int:pk>/", api.EvaluationDetailApi.as_view(), name="api-recommend-evaluation"),
    path("widget-keys/", widget_api.WidgetKeyListCreateApi.as_view(), name="api-recommend-widget-keys"),
    path("widget-keys/<int:pk>/rotate/", widget_api.WidgetKeyRotateApi.as_view(),
         name="api-recommend-widget-key-rotate"),
    path("widget-keys/<int:pk>/revoke/", widget_api.WidgetKeyRevokeApi.as_view(),
         name="api-recommend-widget-key-revoke"),
    path("widget/recommendations/", widget_api.WidgetRecommendationsApi.as_view(), name="api-recommend-widget"),
    path("widget/clicks/", widget_api.WidgetClickApi.as_view(), name="api-recommend-widget-clicks"),
]
