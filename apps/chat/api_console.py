"""The agent REST API, for programmatic agents (a helpdesk integration, a script): take over,
hand back, close, reply, agent-assist draft, corrections of assistant replies (training data)
and saved replies. Agents and admins only (session or API token); other roles 403,
anonymous callers 401, unknown ids 404. State changes and replies reach the sockets of the
conversation and the agents' queue exactly as the console's socket frames do
(``services.agent_actions``).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import HasRole
from apps.accounts.roles import Role
from apps.chat import serializers_console as s
from apps.chat.models import Conversation, Message, SavedReply
from apps.chat.services import assist
from apps.chat.services.agent_actions import agent_close, agent_hand_back, agent_reply, agent_take_over
from apps.chat.services.conversations import ConversationError, ConversationStateError, message_payload
from apps.chat.services.corrections import correction_create
from apps.chat.services.saved_replies import (
    saved_reply_create,
    saved_reply_delete,
    saved_reply_get,
    saved_reply_list,
    saved_reply_update,
)
from apps.core.api import drf_validation_error, first_or_404, validated
from apps.core.errors import error_body
from apps.core.schema import ErrorSerializer

Agent = HasRole.of(Role.AGENT)
REFUSED = OpenApiResponse(ErrorSerializer, description="Not possible now (code conversation_state): e.g. closed.")
INVALID = OpenApiResponse(ErrorSerializer, description="Empty or oversized text (code message_invalid).")


def _conversation_or_404(public_id: Any) -> Conversation:
    return first_or_404(Conversation.objects.select_related("route", "assigned_agent"), public_id=public_id)


def _refused(exc: ConversationError) -> Response:
    code = status.HTTP_409_CONFLICT if isinstance(exc, ConversationStateError) else status.HTTP_400_BAD_REQUEST
    return Response(error_body(exc.code, str(exc)), status=code)


def _action_response(conversation: Conversation, message: Message | None) -> Response:
    return Response(s.AgentActionOutputSerializer({"conversation": conversation, "message": message}).data)


class _ConversationActionApi(APIView):
    permission_classes = (Agent,)
    transition: Any = None  # (conversation, agent) -> Message | None (not "action": DRF reads that)

    def post(self, request: Request, public_id: Any) -> Response:
        conversation = _conversation_or_404(public_id)
        try:
            message = type(self).transition(conversation, request.user)
        except ConversationError as exc:
            return _refused(exc)
        return _action_response(conversation, message)


class ConversationTakeOverApi(_ConversationActionApi):
    """The agent answers from now on; a reply the assistant is streaming stops."""

    transition = staticmethod(agent_take_over)

    @extend_schema(
        operation_id="chat_conversation_take_over",
        request=None,
        responses={200: s.AgentActionOutputSerializer, 409: REFUSED},
    )
    def post(self, request: Request, public_id: Any) -> Response:
        return super().post(request, public_id)


class ConversationHandBackApi(_ConversationActionApi):
    transition = staticmethod(agent_hand_back)

    @extend_schema(
        operation_id="chat_conversation_hand_back",
        request=None,
        responses={200: s.AgentActionOutputSerializer, 409: REFUSED},
    )
    def post(self, request: Request, public_id: Any) -> Response:
        return super().post(request, public_id)


class ConversationCloseApi(_ConversationActionApi):
    transition = staticmethod(agent_close)

    @extend_schema(
        operation_id="chat_conversation_close",
        request=None,
        responses={200: s.AgentActionOutputSerializer, 409: REFUSED},
    )
    def post(self, request: Request, public_id: Any) -> Response:
        return super().post(request, public_id)


class ConversationAgentMessageApi(APIView):
    """An agent's reply; the conversation must have been taken over first."""

    permission_classes = (Agent,)

    @extend_schema(
        operation_id="chat_conversation_agent_message",
        request=s.AgentMessageInputSerializer,
        responses={201: s.MessageOutputSerializer, 400: INVALID, 409: REFUSED},
    )
    def post(self, request: Request, public_id: Any) -> Response:
        conversation = _conversation_or_404(public_id)
        data = validated(s.AgentMessageInputSerializer, request.data)
        try:
            message = agent_reply(conversation, request.user, data["text"], generator=data["generator"])
        except ConversationError as exc:
            return _refused(exc)
        return Response(message_payload(message), status=status.HTTP_201_CREATED)


class ConversationDraftApi(APIView):
    """Agent assist: a reply to the customer's latest message, grounded in the knowledge base."""

    permission_classes = (Agent,)

    @extend_schema(
        operation_id="chat_conversation_draft",
        responses={
            200: s.DraftOutputSerializer,
            503: OpenApiResponse(ErrorSerializer, description="No model can serve drafts here (model_unavailable)."),
        },
    )
    def get(self, request: Request, public_id: Any) -> Response:
        conversation = _conversation_or_404(public_id)
        try:
            draft = async_to_sync(assist.draft_reply)(conversation)  # a full LM queue: the extractive draft
        except assist.DraftUnavailable as exc:
            return Response(error_body("model_unavailable", str(exc)), status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(s.DraftOutputSerializer({"text": draft.text, "sources": draft.sources}).data)


class MessageCorrectionApi(APIView):
    """An agent's better answer to an assistant reply, stored as training data."""

    permission_classes = (Agent,)

    @extend_schema(
        operation_id="chat_message_correction_create",
        request=s.ChatCorrectionInputSerializer,
        responses={201: s.ChatCorrectionOutputSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        message = Message.objects.filter(pk=pk).first()
        if message is None:
            raise Http404
        data = validated(s.ChatCorrectionInputSerializer, request.data)
        try:
            correction = correction_create(
                message=message, text=data["text"], intent=data["intent"], agent=request.user
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.ChatCorrectionOutputSerializer(correction).data, status=status.HTTP_201_CREATED)


def _saved_reply_or_404(pk: int) -> SavedReply:
    reply = saved_reply_get(pk)
    if reply is None:
        raise Http404
    return reply


class SavedReplyListCreateApi(APIView):
    permission_classes = (Agent,)

    @extend_schema(operation_id="chat_saved_replies_list", responses={200: s.SavedReplyOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        q = str(request.query_params.get("q", "")).strip()[:100]
        return Response(s.SavedReplyOutputSerializer(saved_reply_list(q=q), many=True).data)

    @extend_schema(
        operation_id="chat_saved_replies_create",
        request=s.SavedReplyInputSerializer,
        responses={201: s.SavedReplyOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.SavedReplyInputSerializer, request.data)
        try:
            reply = saved_reply_create(values=data, user=request.user, request=request)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.SavedReplyOutputSerializer(reply).data, status=status.HTTP_201_CREATED)


class SavedReplyDetailApi(APIView):
    permission_classes = (Agent,)

    @extend_schema(operation_id="chat_saved_replies_retrieve", responses={200: s.SavedReplyOutputSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.SavedReplyOutputSerializer(_saved_reply_or_404(pk)).data)

    @extend_schema(
        operation_id="chat_saved_replies_update",
        request=s.SavedReplyInputSerializer(partial=True),
        responses={200: s.SavedReplyOutputSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        reply = _saved_reply_or_404(pk)
        data = validated(s.SavedReplyInputSerializer, request.data, partial=True)
        try:
            reply = saved_reply_update(saved_reply=reply, values=data, user=request.user, request=request)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(s.SavedReplyOutputSerializer(reply).data)

    @extend_schema(operation_id="chat_saved_replies_destroy", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        saved_reply_delete(saved_reply=_saved_reply_or_404(pk), user=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
