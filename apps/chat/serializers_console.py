"""Serializers of the agent REST API (``api_console``): shapes only, the services decide."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from apps.chat.models import Message
from apps.chat.serializers_conversations import ConversationSummarySerializer, MessageOutputSerializer, SourceSerializer
from apps.chat.services.corrections import CORRECTION_MAX_CHARS
from apps.chat.services.saved_replies import SHORTCUT_MAX, TITLE_MAX, text_max_chars


class AgentActionOutputSerializer(serializers.Serializer):
    conversation = ConversationSummarySerializer()
    message = MessageOutputSerializer(
        allow_null=True, help_text="The system message the customer sees; null when nothing changed."
    )


class AgentMessageInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=settings.TRELLIS_CHAT_MAX_MESSAGE_CHARS, trim_whitespace=True)
    generator = serializers.ChoiceField(
        choices=[Message.Generator.AGENT, Message.Generator.DRAFT],
        default=Message.Generator.AGENT,
        help_text='"draft" when the text is an agent-assist draft sent as is.',
    )


class ChatCorrectionInputSerializer(serializers.Serializer):
    text = serializers.CharField(
        max_length=CORRECTION_MAX_CHARS, help_text="The answer the assistant should have given."
    )
    intent = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class ChatCorrectionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    message_id = serializers.IntegerField()
    text = serializers.CharField()
    intent = serializers.CharField()
    agent = serializers.CharField(source="agent.username", default=None)
    created_at = serializers.DateTimeField()


class DraftOutputSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="Empty when nothing in the knowledge base fits.")
    sources = SourceSerializer(many=True)


class SavedReplyInputSerializer(serializers.Serializer):
    shortcut = serializers.CharField(
        max_length=SHORTCUT_MAX + 1, help_text="Typed as /shortcut; a leading / is dropped."
    )
    title = serializers.CharField(max_length=TITLE_MAX)
    text = serializers.CharField(max_length=text_max_chars(), trim_whitespace=False)


class SavedReplyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    shortcut = serializers.CharField()
    title = serializers.CharField()
    text = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
