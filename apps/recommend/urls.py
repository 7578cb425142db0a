"""Merchandiser dashboard, mounted at ``/recommend/``."""

from django.urls import path

from apps.recommend import views

app_name = "recommend"

urlpatterns = [
    path("", views.catalogue, name="home"),
    path("imports/", views.import_create, name="import_create"),
    path("imports/<int:pk>/", views.import_detail, name="import"),
    path("index/rebuild/", views.index_rebuild, name="index_rebuild"),
    path("fit/", views.fit, name="fit"),
    path("items/<str:external_id>/", views.item_explorer, name="item"),
    path("customers/", views.customer, name="customer"),
    path("abtests/", views.abtest_index, name="abtests"),
    path("abtests/<int:pk>/", views.abtest_detail, name="abtest"),
    path("abtests/<int:pk>/stop/", views.abtest_stop_view, name="abtest_stop"),
    path("evaluations/", views.evaluation_index, name="evaluations"),
    path("evaluations/<int:pk>/", views.evaluation_detail, name="evaluation"),
    path("widget/", views.widget_keys, name="widget"),
    path("widget/<int:pk>/rotate/", views.widget_key_rotate_page, name="widget-rotate"),
    path("widget/<int:pk>/revoke/", views.widget_key_revoke_page, name="widget-revoke"),
]
