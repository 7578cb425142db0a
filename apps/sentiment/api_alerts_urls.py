"""The alert side of ``/api/sentiment/``: alerts, rules, corrections, backtests, explanations."""

from django.urls import path

from apps.sentiment import api_alerts as api

urlpatterns = [
    path("alerts/", api.AlertListApi.as_view(), name="api-sentiment-alerts"),
    path("alerts/<int:pk>/", api.AlertDetailApi.as_view(), name="api-sentiment-alert"),
    path("alerts/<int:pk>/acknowledge/", api.AlertAcknowledgeApi.as_view(), name="api-sentiment-alert-acknowledge"),
    path("alerts/<int:pk>/resolve/", api.AlertResolveApi.as_view(), name="api-sentiment-alert-resolve"),
    path("rules/", api.AlertRuleListCreateApi.as_view(), name="api-sentiment-rules"),
    path("rules/<int:pk>/", api.AlertRuleDetailApi.as_view(), name="api-sentiment-rule"),
    path("corrections/", api.CorrectionListCreateApi.as_view(), name="api-sentiment-corrections"),
    path("corrections/export/", api.CorrectionsExportApi.as_view(), name="api-sentiment-corrections-export"),
    path("backtests/", api.BacktestListCreateApi.as_view(), name="api-sentiment-backtests"),
    path("backtests/<int:pk>/", api.BacktestDetailApi.as_view(), name="api-sentiment-backtest"),
    path("documents/<int:pk>/explain/", api.DocumentExplainApi.as_view(), name="api-sentiment-document-explain"),
]
