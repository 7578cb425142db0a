from django.urls import path

from apps.accounts import api

urlpatterns = [
    path("token/", api.TokenObtainApi.as_view(), name="api-token-obtain"),
    path("token/rotate/", api.TokenRotateApi.as_view(), name="api-token-rotate"),
    path("me/", api.MeApi.as_view(), name="api-me"),
]
