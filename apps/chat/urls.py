"""Knowledge-base dashboard, mounted at ``/kb/`` (namespace ``kb``)."""

from django.urls import path

from apps.chat import views

app_name = "kb"

urlpatterns = [
    path("", views.home, name="home"),
    path("articles/new/", views.article_new, name="article_new"),
    path("articles/<int:pk>/", views.article_detail, name="article"),
    path("articles/<int:pk>/edit/", views.article_edit, name="article_edit"),
    path("articles/<int:pk>/delete/", views.article_delete_view, name="article_delete"),
    path("imports/", views.import_page, name="imports"),
    path("imports/<int:pk>/", views.import_detail, name="import"),
    path("index/rebuild/", views.index_rebuild, name="index_rebuild"),
]
