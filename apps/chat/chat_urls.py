"""Chat dashboard pages, mounted at ``/chat/`` (namespace ``chat``): the agent console, saved
replies, widget routes, analytics and the demo shop. The knowledge base is ``/kb/``."""

from django.urls import path

from apps.chat import views_console, views_insights, views_widget

app_name = "chat"

urlpatterns: list = [
    path("routes/", views_widget.routes, name="routes"),
    path("routes/<int:pk>/", views_widget.route_edit, name="route"),
    path("shop/", views_widget.shop, name="shop"),
    path("help/<int:pk>/", views_widget.article_public, name="article"),
    path("exports/", views_insights.exports, name="exports"),
    path("unanswered/", views_insights.unanswered, name="unanswered"),
    path("analytics/", views_insights.analytics, name="analytics"),
    path("console/", views_console.console, name="console"),
    path("saved-replies/", views_console.saved_replies, name="saved_replies"),
    path("saved-replies/new/", views_console.saved_reply_new, name="saved_reply_new"),
    path("saved-replies/<int:pk>/edit/", views_console.saved_reply_edit, name="saved_reply_edit"),
    path("saved-replies/<int:pk>/delete/", views_console.saved_reply_delete_view, name="saved_reply_delete"),
]
