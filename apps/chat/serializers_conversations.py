"""Input and output shapes of the conversations API (``apps/chat/api_conversations.py``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.chat.models import Conversation
from apps.chat.services.conversations import conversation_payload, message_payload


class ConversationStartInputSerializer(serializers.Serializer):
    route = serializers.SlugField(max_length=50, help_text="The widget route's key (``data-route``).")


class ConversationStartOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The conversation's public id.")
    token = serializers.CharField(
        help_text="Signed visitor token: send it as X-Conversation-Token or in the socket's hello frame."
    )
    greeting = serializers.CharField()
    title = serializers.CharField()
    brand_colour = serializers.CharField()
    ws_path = serializers.CharField(help_text="The conversation's WebSocket path.")


class ConversationFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Conversation.Status.choices, required=False, help_text="Agents only.")


class SourceSerializer(serializers.Serializer):
    article_id = serializers.IntegerField()
    title = serializers.CharField()
    heading = serializers.CharField()
    url = serializers.CharField(help_text="The public article page, or empty when there is none.")


class MessageOutputSerializer(serializers.Serializer):
    """``message_payload``: the same shape the socket sends."""

    id = serializers.IntegerField()
    role = serializers.ChoiceField(choices=["customer", "assistant", "agent", "system"])
    text = serializers.CharField()
    sources = SourceSerializer(many=True)
    decision = serializers.CharField()
    generator = serializers.CharField()
    intent = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)
    completed = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    author = serializers.CharField(allow_null=True, help_text="The agent's name on agent messages.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return message_payload(instance)


class ConversationSummarySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")
    route = serializers.CharField(source="route.key", default=None)
    agent = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = (
            "id",
            "route",
            "status",
            "handoff_reason",
            "handoff_at",
            "priority",
            "agent",
            "rating",
            "created_at",
            "last_activity_at",
            "closed_at",
        )

    def get_agent(self, conversation: Conversation) -> str | None:
        return conversation_payload(conversation)["agent"]


class ConversationDetailSerializer(ConversationSummarySerializer):
    messages = MessageOutputSerializer(many=True, source="messages.all")

    class Meta(ConversationSummarySerializer.Meta):
        fields = (*ConversationSummarySerializer.Meta.fields, "messages")


class FeedbackInputSerializer(serializers.Serializer):
    helpful = serializers.BooleanField()
    comment = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class FeedbackOutputSerializer(serializers.Serializer):
    message_id = serializers.IntegerField()
    helpful = serializers.BooleanField()
    comment = serializers.CharField()


class RatingInputSerializer(serializers.Serializer):
    rating = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class RatingOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    status = serializers.CharField()
    rating = serializers.IntegerField()
    rating_comment = serializers.CharField()
