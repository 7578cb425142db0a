from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from apps.accounts.roles import user_roles
from apps.accounts.services import token_for_user, token_rotate


class TokenObtainInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField()
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


class MeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


class TokenObtainApi(APIView):
    """Exchanges a username and password for an API token (header ``Authorization: Token <key>``)."""

    permission_classes = (AllowAny,)
    authentication_classes = ()
    throttle_classes = (AnonRateThrottle,)

    @extend_schema(request=TokenObtainInputSerializer, responses={200: TokenOutputSerializer})
    def post(self, request):
        data = TokenObtainInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None:
            return Response(
                {"error": {"code": "invalid_credentials", "message": "Wrong username or password.", "details": {}}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        token = token_for_user(user)
        return Response({"token": token.key, "username": user.username, "roles": sorted(user_roles(user))})


class TokenRotateApi(APIView):
    """Replaces the caller's API token."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(request=None, responses={200: TokenOutputSerializer})
    def post(self, request):
        token = token_rotate(request.user)
        return Response({"token": token.key, "username": request.user.username,
                         "roles": sorted(user_roles(request.user))})


class MeApi(APIView):
    """Who the caller is and which roles they hold."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(responses={200: MeOutputSerializer})
    def get(self, request):
        return Response({"id": request.user.id, "username": request.user.username,
                         "roles": sorted(user_roles(request.user))})
