"""The conversations API: start a chat (anonymous), read it, thumbs and ratings.

A visitor proves it may see a conversation with its signed token in the
``X-Conversation-Token`` header; a signed-in customer with its session (its own
conversations), agents and admins see all. Anyone else gets 404, never 403, so that ids
cannot be probed. The widget then talks over ``ws_path``; these views only validate, call
one service in ``apps.chat.services.conversations`` and serialize.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status, throttling
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.roles import Role, user_has_role
from apps.accounts.throttling import SharedCacheMixin
from apps.chat import serializers_conversations as s
from apps.chat.models import Conversation, Message, WidgetRoute
from apps.chat.services.conversations import (
    ConversationError,
    ConversationTokenError,
    conversation_can_view,
    conversation_for_token,
    conversation_start,
    feedback_set,
    rating_set,
    route_origin_allowed,
)
from apps.core.api import paginated, validated
from apps.core.errors import error_body
from apps.core.schema import ErrorSerializer

TOKEN_HEADER = "HTTP_X_CONVERSATION_TOKEN"  # noqa: S105  (a header name, not a secret)
TOKEN_PARAMETER = OpenApiParameter(
    "X-Conversation-Token",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The visitor's conversation token (from POST /api/chat/conversations/). Not needed with a session.",
)
NOT_YOURS = OpenApiResponse(ErrorSerializer, description="Unknown conversation, or not yours (no token, a bad one).")


class ChatStartThrottle(SharedCacheMixin, throttling.AnonRateThrottle):
    """New conversations per client address, signed in or not (``TRELLIS_THROTTLE_CHAT_START``)."""

    scope = "chat_start"

    def get_rate(self) -> str:
        return settings.TRELLIS_THROTTLE_CHAT_START  # read per request, so tests and ops can change it

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ConversationPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


def _conversation_visible(request: Request, public_id: Any, *, customer_only: bool = False) -> Conversation:
    """The conversation when the token or the session may see it, else 404. ``customer_only``:
    its visitor (token) or signed-in owner, not agents (thumbs and ratings are the customer's)."""
    token = request.META.get(TOKEN_HEADER)
    if token:
        try:
            return conversation_for_token(public_id, token)
        except (ConversationTokenError, Conversation.DoesNotExist):
            pass  # a session may still open it (an agent, the owner)
    conversation = Conversation.objects.select_related("route", "assigned_agent").filter(public_id=public_id).first()
    if conversation is None or not conversation_can_view(conversation, user=request.user, token_ok=False):
        raise Http404
    if customer_only and (conversation.customer_id is None or conversation.customer_id != request.user.pk):
        raise Http404
    return conversation


def _refused(exc: ConversationError) -> Response:
    return Response(error_body(exc.code, str(exc)), status=status.HTTP_400_BAD_REQUEST)


class ConversationListCreateApi(APIView):
    pagination_class = ConversationPagination  # the schema documents the list as paginated (what get returns)

    def get_permissions(self) -> list[permissions.BasePermission]:
        return [permissions.AllowAny()] if self.request.method == "POST" else [permissions.IsAuthenticated()]

    def get_throttles(self) -> list[Any]:
        extra = [ChatStartThrottle()] if self.request.method == "POST" else []
        return [*super().get_throttles(), *extra]

    @extend_schema(
        operation_id="chat_conversations_list",
        parameters=[s.ConversationFilterSerializer],
        responses={200: s.ConversationSummarySerializer(many=True)},
        description="Signed-in customers: their own conversations. Agents and admins: all, by status.",
    )
    def get(self, request: Request) -> Response:
        filters = validated(s.ConversationFilterSerializer, request.query_params)
        conversations = Conversation.objects.select_related("route", "assigned_agent")
        if user_has_role(request.user, [Role.AGENT]):
            if filters.get("status"):
                conversations = conversations.filter(status=filters["status"])
        else:
            conversations = conversations.filter(customer=request.user)
        return paginated(self, request, conversations, s.ConversationSummarySerializer, ConversationPagination)

    @extend_schema(
        operation_id="chat_conversations_create",
        request=s.ConversationStartInputSerializer,
        responses={
            201: s.ConversationStartOutputSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Unknown or inactive route (code route_unknown)."),
            403: OpenApiResponse(ErrorSerializer, description="The page's Origin may not use this route."),
        },
        auth=[],
        description="Anonymous visitors may start a conversation; keep the token it returns.",
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ConversationStartInputSerializer, request.data)
        route = WidgetRoute.objects.filter(key=data["route"], active=True).first()
        if route is None:
            return Response(
                error_body("route_unknown", f"There is no active chat route {data['route']!r}."),
                status=status.HTTP_400_BAD_REQUEST,
            )
        origin = request.META.get("HTTP_ORIGIN", "")
        if not route_origin_allowed(route, origin, host=request.get_host()):
            return Response(
                error_body("origin_not_allowed", "This site may not embed this chat."), status=status.HTTP_403_FORBIDDEN
            )
        try:
            conversation, token = conversation_start(route=route, customer=request.user, origin=origin)
        except ConversationError as exc:
            return _refused(exc)
        body = {
            "id": conversation.public_id,
            "token": token,
            "greeting": route.greeting,
            "title": route.title,
            "brand_colour": route.brand_colour,
            "ws_path": f"/ws/chat/{conversation.public_id}/",
        }
        return Response(s.ConversationStartOutputSerializer(body).data, status=status.HTTP_201_CREATED)


class ConversationDetailApi(APIView):
    permission_classes = (permissions.AllowAny,)

    @extend_schema(
        operation_id="chat_conversations_retrieve",
        parameters=[TOKEN_PARAMETER],
        responses={200: s.ConversationDetailSerializer, 404: NOT_YOURS},
    )
    def get(self, request: Request, public_id: Any) -> Response:
        return Response(s.ConversationDetailSerializer(_conversation_visible(request, public_id)).data)


class ConversationRatingApi(APIView):
    permission_classes = (permissions.AllowAny,)

    @extend_schema(
        operation_id="chat_conversations_rating",
        parameters=[TOKEN_PARAMETER],
        request=s.RatingInputSerializer,
        responses={200: s.RatingOutputSerializer, 404: NOT_YOURS},
        description="Rates the conversation 1-5; closes it when it is still open.",
    )
    def post(self, request: Request, public_id: Any) -> Response:
        conversation = _conversation_visible(request, public_id, customer_only=True)
        data = validated(s.RatingInputSerializer, request.data)
        try:
            rating_set(conversation, data["rating"], data["comment"])
        except ConversationError as exc:
            return _refused(exc)
        return Response(s.RatingOutputSerializer(conversation).data)


class MessageFeedbackApi(APIView):
    permission_classes = (permissions.AllowAny,)

    @extend_schema(
        operation_id="chat_messages_feedback",
        parameters=[TOKEN_PARAMETER],
        request=s.FeedbackInputSerializer,
        responses={200: s.FeedbackOutputSerializer, 404: NOT_YOURS},
        description="Thumbs up or down on a reply; a second call replaces the first.",
    )
    def post(self, request: Request, pk: int) -> Response:
        message = Message.objects.select_related("conversation").filter(pk=pk).first()
        if message is None:
            raise Http404
        _conversation_visible(request, message.conversation.public_id, customer_only=True)
        data = validated(s.FeedbackInputSerializer, request.data)
        try:
            feedback = feedback_set(message, data["helpful"], data["comment"])
        except ConversationError as exc:
            return _refused(exc)
        return Response(
            s.FeedbackOutputSerializer(
                {"message_id": message.pk, "helpful": feedback.helpful, "comment": feedback.comment}
            ).data
        )
