"""Analyst dashboard, mounted at ``/sentiment/``."""

from django.urls import path

from apps.sentiment import views, views_sources

app_name = "sentiment"

urlpatterns = [
    path("", views.overview, name="home"),
    path("entities/<str:symbol>/", views.entity_detail, name="entity"),
    path("documents/<int:pk>/", views.document_detail, name="document"),
    path("documents/<int:pk>/correct/", views.document_correct, name="document_correct"),
    path("alerts/", views.alert_inbox, name="alerts"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert"),
    path("alerts/<int:pk>/acknowledge/", views.alert_acknowledge_view, name="alert_acknowledge"),
    path("alerts/<int:pk>/resolve/", views.alert_resolve_view, name="alert_resolve"),
    path("alerts/<int:pk>/deliveries/<int:delivery_pk>/retry/", views.delivery_retry_view, name="delivery_retry"),
    path("rules/", views.rule_index, name="rules"),
    path("rules/<int:pk>/", views.rule_detail, name="rule"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
    path("corrections/", views.correction_index, name="corrections"),
    path("corrections/export/", views.corrections_export_view, name="corrections_export"),
    path("backtests/", views.backtest_index, name="backtests"),
    path("backtests/<int:pk>/", views.backtest_detail, name="backtest"),
    path("sources/", views_sources.source_index, name="sources"),
    path("sources/upload/", views_sources.source_upload, name="source_upload"),
    path("sources/<int:pk>/poll/", views_sources.source_poll, name="source_poll"),
    path("watchlists/", views_sources.watchlist_index, name="watchlists"),
    path("watchlists/<int:pk>/", views_sources.watchlist_detail, name="watchlist"),
    path("watchlists/entities/<str:symbol>/", views_sources.entity_edit, name="entity_edit"),
]
