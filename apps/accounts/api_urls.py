from django.urls import path

from apps.accounts import api

urlpatterns = [
    path("token/", api.TokenObtainApi.as_view(), name="api-token-obtain"),
    path("token/rotate/", api.TokenRotateApi.as_view(), name="api-token-rotate"),
    path("token/revoke/", api.TokenRevokeApi.as_view(), name="api-token-revoke"),
    path("tokens/", api.TokenListApi.as_view(), name="api-token-list"),
    path("tokens/<int:token_id>/", api.TokenDetailApi.as_view(), name="api-token-detail"),
    path("ws-ticket/", api.WsTicketApi.as_view(), name="api-ws-ticket"),
    path("me/", api.MeApi.as_view(), name="api-me"),
]
