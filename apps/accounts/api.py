"""Auth API: tokens (obtain, rotate, revoke, list), WebSocket tickets, who am I.

Tokens go in the header ``Authorization: Token <key>``; the key is shown once, when it is
made. Logins are limited per address and per username, and a username + address that keeps
failing is locked out for a while (django-axes; 429 ``locked_out`` with Retry-After).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import ApiToken, User
from apps.accounts.roles import user_roles
from apps.accounts.selectors import token_list
from apps.accounts.services import (
    lockout_remaining_s,
    token_create,
    token_revoke,
    token_revoke_by_id,
    token_rotate,
    ws_ticket_create,
)
from apps.accounts.throttling import AnonRateThrottle, LoginUsernameThrottle, client_ip


class LockedOut(exceptions.Throttled):
    default_detail = "Too many failed logins for this username from this address; try again later."
    default_code = "locked_out"


class TokenObtainInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The key: shown this once, never stored in the clear.")
    token_id = serializers.IntegerField()
    expiry = serializers.DateTimeField()
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


class TokenListItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prefix = serializers.CharField(help_text="The key's first characters, to tell tokens apart.")
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField(allow_null=True)
    current = serializers.BooleanField(help_text="The token this request was made with.")


class TicketOutputSerializer(serializers.Serializer):
    ticket = serializers.CharField(help_text="Open the socket with ?ticket=<ticket>; valid once.")
    expires_in = serializers.IntegerField(help_text="Seconds the ticket stays valid.")


class MeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


def _token_body(user: User, token: ApiToken, key: str) -> dict:
    return {"token": key, "token_id": token.pk, "expiry": token.expiry, "username": user.username,
            "roles": sorted(user_roles(user))}


class TokenRequired(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Send the token to act on in the header: Authorization: Token <key>."
    default_code = "token_required"


def _current_token(request: Request) -> ApiToken:
    """The token the request was authenticated with (rotate and revoke act on it, not on a session)."""
    if not isinstance(request.auth, ApiToken):
        raise TokenRequired()
    return request.auth


class TokenObtainApi(APIView):
    """Exchanges a username and password for a new API token (header ``Authorization: Token <key>``)."""

    permission_classes = (AllowAny,)
    authentication_classes = ()
    throttle_classes = (AnonRateThrottle, LoginUsernameThrottle)

    @extend_schema(request=TokenObtainInputSerializer, responses={200: TokenOutputSerializer})
    def post(self, request):
        data = TokenObtainInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None:
            if getattr(request, "axes_locked_out", False):  # set by django-axes' backend and handler
                raise LockedOut(wait=lockout_remaining_s(username=data.validated_data["username"],
                                                         ip_address=client_ip(request)))
            return Response(
                {"error": {"code": "invalid_credentials", "message": "Wrong username or password.", "details": {}}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        token, key = token_create(user)
        return Response(_token_body(user, token, key))


class TokenRotateApi(APIView):
    """Revokes the token this request is made with and returns a new one (sockets opened with it close)."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(request=None, responses={200: TokenOutputSerializer})
    def post(self, request):
        token, key = token_rotate(_current_token(request), request=request)
        return Response(_token_body(request.user, token, key))


class TokenRevokeApi(APIView):
    """Logs out: revokes the token this request is made with (sockets opened with it close)."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        token_revoke(_current_token(request), request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListApi(APIView):
    """The caller's working tokens, newest first (never their keys)."""

    permission_classes = (IsAuthenticated,)
    pagination_class = None

    @extend_schema(responses={200: TokenListItemSerializer(many=True)})
    def get(self, request):
        current = request.auth.pk if isinstance(request.auth, ApiToken) else None
        items = [{"id": t.pk, "prefix": t.prefix, "created": t.created, "expiry": t.expiry, "current": t.pk == current}
                 for t in token_list(request.user)]
        return Response(TokenListItemSerializer(items, many=True).data)


class TokenDetailApi(APIView):
    """Revokes one of the caller's tokens by id (404 for anybody else's)."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, token_id: int):
        try:
            token_revoke_by_id(user=request.user, token_id=token_id, request=request)
        except ApiToken.DoesNotExist as missing:
            raise Http404("No such token.") from missing
        return Response(status=status.HTTP_204_NO_CONTENT)


class WsTicketApi(APIView):
    """A single-use ticket to open one WebSocket (``?ticket=``), bound to the caller and their token."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(request=None, responses={200: TicketOutputSerializer})
    def post(self, request):
        token = request.auth if isinstance(request.auth, ApiToken) else None
        return Response({"ticket": ws_ticket_create(request.user, token=token),
                         "expires_in": settings.TRELLIS_WS_TICKET_TTL_S})


class MeApi(APIView):
    """Who the caller is and which roles they hold."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(responses={200: MeOutputSerializer})
    def get(self, request):
        return Response({"id": request.user.id, "username": request.user.username,
                         "roles": sorted(user_roles(request.user))})
