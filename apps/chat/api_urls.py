"""``/api/chat/``: the knowledge base (articles, imports, search)."""

from django.urls import path

from apps.chat import api, api_console, api_conversations, api_insights

urlpatterns = [
    path("kb/articles/", api.ArticleListCreateApi.as_view(), name="api-kb-articles"),
    path("kb/articles/<int:pk>/", api.ArticleDetailApi.as_view(), name="api-kb-article"),
    path("kb/search/", api.KbSearchApi.as_view(), name="api-kb-search"),
    path("kb/imports/", api.KbImportCreateApi.as_view(), name="api-kb-imports"),
    path("kb/imports/<int:pk>/", api.KbImportDetailApi.as_view(), name="api-kb-import"),
    path("kb/index/rebuild/", api.KbIndexRebuildApi.as_view(), name="api-kb-index-rebuild"),
    path("conversations/", api_conversations.ConversationListCreateApi.as_view(), name="api-chat-conversations"),
    path(
        "conversations/<uuid:public_id>/",
        api_conversations.ConversationDetailApi.as_view(),
        name="api-chat-conversation",
    ),
    path(
        "conversations/<uuid:public_id>/rating/",
        api_conversations.ConversationRatingApi.as_view(),
        name="api-chat-conversation-rating",
    ),
    path(
        "messages/<int:pk>/feedback/", api_conversations.MessageFeedbackApi.as_view(), name="api-chat-message-feedback"
    ),
    path("exports/", api_insights.ChatExportApi.as_view(), name="api-chat-exports"),
    path("unanswered/", api_insights.ChatUnansweredApi.as_view(), name="api-chat-unanswered"),
    path("analytics/", api_insights.ChatAnalyticsApi.as_view(), name="api-chat-analytics"),
    # agents (api_console): take over, hand back, close, reply, draft, corrections, saved replies
    path(
        "conversations/<uuid:public_id>/take-over/",
        api_console.ConversationTakeOverApi.as_view(),
        name="api-chat-conversation-take-over",
    ),
    path(
        "conversations/<uuid:public_id>/hand-back/",
        api_console.ConversationHandBackApi.as_view(),
        name="api-chat-conversation-hand-back",
    ),
    path(
        "conversations/<uuid:public_id>/close/",
        api_console.ConversationCloseApi.as_view(),
        name="api-chat-conversation-close",
    ),
    path(
        "conversations/<uuid:public_id>/messages/",
        api_console.ConversationAgentMessageApi.as_view(),
        name="api-chat-conversation-messages",
    ),
    path(
        "conversations/<uuid:public_id>/draft/",
        api_console.ConversationDraftApi.as_view(),
        name="api-chat-conversation-draft",
    ),
    path(
        "messages/<int:pk>/corrections/",
        api_console.MessageCorrectionApi.as_view(),
        name="api-chat-message-corrections",
    ),
    path("saved-replies/", api_console.SavedReplyListCreateApi.as_view(), name="api-chat-saved-replies"),
    path("saved-replies/<int:pk>/", api_console.SavedReplyDetailApi.as_view(), name="api-chat-saved-reply"),
]
