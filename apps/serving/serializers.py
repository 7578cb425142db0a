"""Request validation and documented response shapes of the inference API.

Requests follow OpenAI's API reference (embeddings, chat completions); unknown fields are
ignored as OpenAI ignores them, but fields that ask for a feature this server does not
have (tools, n > 1, logprobs, ...) are refused by name rather than silently dropped.
Response serializers only document the shapes (drf-spectacular); views build plain dicts.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.serving.limits import serving_limits

CLASSIFY_ROLES = ("intent", "sentiment")


def _is_token_array(value: Any) -> bool:
    """``[1, 2, 3]`` or ``[[1, 2], [3]]``: OpenAI accepts token ids; this server does not."""
    if isinstance(value, list) and value:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in value) or all(
            _is_token_array(v) for v in value
        )
    return False


def check_texts(texts: Any, *, name: str) -> list[str]:
    """A non-empty list of non-empty strings within the request limits, or ValidationError."""
    limits = serving_limits()
    if _is_token_array(texts):
        raise serializers.ValidationError(
            "token arrays are not supported; send text (a string or a list of strings).", code="invalid_type"
        )
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise serializers.ValidationError(f"{name} must be a string or a list of strings.", code="invalid_type")
    if not texts:
        raise serializers.ValidationError(f"{name} is empty; send at least one text.", code="empty")
    if len(texts) > limits.max_texts:
        raise serializers.ValidationError(
            f"{len(texts)} texts in one request; the limit is {limits.max_texts}.", code="too_many"
        )
    for index, text in enumerate(texts):
        if not text:
            raise serializers.ValidationError(f"{name}[{index}] is an empty string.", code="empty")
        if len(text) > limits.max_text_chars:
            raise serializers.ValidationError(
                f"{name}[{index}] has {len(text)} characters; the limit is {limits.max_text_chars}.",
                code="too_long",
            )
    return texts


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
class TextOrTextsField(serializers.Field):
    """A string or a list of strings (OpenAI's ``input``); always a list once validated."""

    def to_internal_value(self, data: Any) -> list[str]:
        return check_texts([data] if isinstance(data, str) else data, name=self.field_name or "input")

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4}]})
class StopField(serializers.Field):
    """``stop``: a string or up to four strings; always a list once validated."""

    def to_internal_value(self, data: Any) -> list[str]:
        limits = serving_limits()
        stops = [data] if isinstance(data, str) else data
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise serializers.ValidationError("stop must be a string or a list of strings.", code="invalid_type")
        if len(stops) > limits.max_stop:
            raise serializers.ValidationError(f"at most {limits.max_stop} stop sequences.", code="too_many")
        for stop in stops:
            if not stop or len(stop) > limits.max_stop_chars:
                raise serializers.ValidationError(
                    f"each stop sequence needs 1 to {limits.max_stop_chars} characters.", code="invalid_value"
                )
        return stops

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
                    "required": ["type", "text"],
                },
            },
        ]
    }
)
class MessageContentField(serializers.Field):
    """A message's ``content``: a string, or OpenAI's list of ``{"type": "text", "text"}`` parts
    (joined with newlines). Images, audio and files are refused: the chat model reads text."""

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        if isinstance(data, list) and data:
            texts = []
            for part in data:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise serializers.ValidationError(
                        "only text content parts ({'type': 'text', 'text': ...}) are supported.", code="invalid_type"
                    )
                texts.append(part["text"])
            return "\n".join(texts)
        raise serializers.ValidationError("content must be a string or a list of text parts.", code="invalid_type")

    def to_representation(self, value: Any) -> Any:
        return value


# --- embeddings ---------------------------------------------------------------------------


class EmbeddingsRequestSerializer(serializers.Serializer):
    input = TextOrTextsField(help_text="A text or a list of texts (token arrays are not supported).")
    model = serializers.CharField(max_length=200, help_text='A role ("embedder") or a model id from /v1/models.')
    encoding_format = serializers.ChoiceField(choices=("float", "base64"), default="float")
    dimensions = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="Must equal the model's size (384) if given."
    )
    user = serializers.CharField(required=False, allow_blank=True, max_length=256)


class EmbeddingSerializer(serializers.Serializer):
    object = serializers.CharField(default="embedding")
    index = serializers.IntegerField()
    embedding = serializers.JSONField(help_text="A list of floats, or base64 of little-endian float32.")


class EmbeddingsUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class EmbeddingsResponseSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = EmbeddingSerializer(many=True)
    model = serializers.CharField()
    usage = EmbeddingsUsageSerializer()


# --- chat completions ---------------------------------------------------------------------


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=("system", "developer", "user", "assistant"))
    content = MessageContentField()
    name = serializers.CharField(required=False, allow_blank=True, max_length=64)

    def validate_role(self, value: str) -> str:
        return "system" if value == "developer" else value  # OpenAI's newer name for system


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(default=False)


# Fields of OpenAI's request that ask for features this server does not have: refused when
# set to anything but their "off" value, so a client learns at once instead of getting less.
UNSUPPORTED_CHAT_FIELDS: dict[str, tuple[Any, ...]] = {
    "tools": (None, []),
    "tool_choice": (None, "none", "auto"),
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
}


class ChatCompletionRequestSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200, help_text='A role ("chat-lm") or a model id from /v1/models.')
    messages = ChatMessageSerializer(many=True, allow_empty=False)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    temperature = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=2.0,
        help_text="0 (the default here, unlike OpenAI's 1) decodes greedily.",
    )
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    stop = StopField(required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, allow_null=True, default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1)
    seed = serializers.IntegerField(
        required=False, allow_null=True,
        help_text="Makes sampling (temperature > 0) reproducible; greedy replies (temperature 0) always are.",
    )
    response_format = serializers.DictField(required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_blank=True, max_length=256)

    def validate_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        limit = serving_limits().max_messages
        if len(messages) > limit:
            raise serializers.ValidationError(f"{len(messages)} messages; the limit is {limit}.", code="too_many")
        if all(m["role"] == "system" for m in messages):
            raise serializers.ValidationError("needs at least one user or assistant message.", code="invalid_value")
        return [{"role": m["role"], "content": m["content"]} for m in messages]

    def validate_response_format(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value and value.get("type", "text") != "text":
            raise serializers.ValidationError("only {'type': 'text'} is supported.", code="unsupported_value")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        raw = self.initial_data if isinstance(self.initial_data, dict) else {}
        for field, off_values in UNSUPPORTED_CHAT_FIELDS.items():
            if field in raw and raw[field] not in off_values:
                raise serializers.ValidationError({field: f"{field} is not supported by this server."},
                                                  code="unsupported_parameter")
        limits = serving_limits()
        max_tokens = attrs.get("max_completion_tokens") or attrs.get("max_tokens") or limits.default_max_tokens
        if max_tokens > limits.max_tokens:
            field = "max_completion_tokens" if attrs.get("max_completion_tokens") else "max_tokens"
            raise serializers.ValidationError(
                {field: f"{max_tokens} is over the limit of {limits.max_tokens} tokens."}, code="invalid_value"
            )
        if attrs.get("stream_options") and not attrs.get("stream"):
            raise serializers.ValidationError(
                {"stream_options": "stream_options is only allowed when stream is true."}, code="invalid_value"
            )
        attrs["max_new_tokens"] = max_tokens
        attrs["temperature"] = attrs.get("temperature") or 0.0
        top_p = attrs.get("top_p")
        attrs["top_p"] = 1.0 if top_p is None else top_p
        if attrs["top_p"] <= 0:
            raise serializers.ValidationError({"top_p": "top_p must be greater than 0."}, code="invalid_value")
        attrs["stop"] = attrs.get("stop") or []
        attrs["stream"] = bool(attrs.get("stream"))
        attrs["include_usage"] = bool((attrs.get("stream_options") or {}).get("include_usage"))
        return attrs


class ChatMessageOutSerializer(serializers.Serializer):
    role = serializers.CharField(default="assistant")
    content = serializers.CharField()
    refusal = serializers.CharField(allow_null=True, default=None)


class ChatChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = ChatMessageOutSerializer()
    logprobs = serializers.JSONField(allow_null=True, default=None)
    finish_reason = serializers.ChoiceField(choices=("stop", "length"))


class ChatUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class ChatCompletionResponseSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="chat.completion")
    created = serializers.IntegerField(help_text="Unix time, seconds.")
    model = serializers.CharField()
    system_fingerprint = serializers.CharField()
    choices = ChatChoiceSerializer(many=True)
    usage = ChatUsageSerializer()


# --- models -------------------------------------------------------------------------------


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="What to pass as `model`.")
    object = serializers.CharField(default="model")
    created = serializers.IntegerField(help_text="Unix time, seconds.")
    owned_by = serializers.CharField(default="trellis")
    role = serializers.CharField()
    version = serializers.CharField()
    status = serializers.ChoiceField(
        choices=("serving", "candidate"), help_text="serving: answers requests; candidate: awaiting promotion."
    )
    base_model = serializers.CharField(allow_blank=True)


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = ModelSerializer(many=True)


class OpenAIErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)


class OpenAIErrorSerializer(serializers.Serializer):
    error = OpenAIErrorDetailSerializer()


# --- /api/ml/ -----------------------------------------------------------------------------


class ClassifyRequestSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=CLASSIFY_ROLES)
    texts = serializers.JSONField(help_text="A list of texts.")

    def validate_texts(self, value: Any) -> list[str]:
        return check_texts(value, name="texts")


class ClassificationSerializer(serializers.Serializer):
    label = serializers.CharField()
    confidence = serializers.FloatField(help_text="Probability of the label, 0..1.")
    probabilities = serializers.DictField(child=serializers.FloatField(), help_text="Every label's probability.")


class ClassifyResponseSerializer(serializers.Serializer):
    role = serializers.CharField()
    version = serializers.CharField()
    results = ClassificationSerializer(many=True)


class EntitiesRequestSerializer(serializers.Serializer):
    texts = serializers.JSONField(help_text="A list of texts.")

    def validate_texts(self, value: Any) -> list[str]:
        return check_texts(value, name="texts")


class SpanSerializer(serializers.Serializer):
    text = serializers.CharField()
    label = serializers.CharField(help_text="ORG, PERSON, GPE, ... or TICKER.")
    start = serializers.IntegerField(help_text="Character offset of the first character.")
    end = serializers.IntegerField(help_text="Character offset just past the last character.")
    ticker = serializers.CharField(allow_null=True)


class EntitiesResultSerializer(serializers.Serializer):
    spans = SpanSerializer(many=True)


class EntitiesResponseSerializer(serializers.Serializer):
    role = serializers.CharField()
    version = serializers.CharField()
    results = EntitiesResultSerializer(many=True)


class ServingErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField(child=serializers.JSONField(), required=False)


class ServingErrorSerializer(serializers.Serializer):
    """The Trellis error shape (``apps.core.errors``), as ``/api/ml/*`` answers it."""

    error = ServingErrorDetailSerializer()


class ServingStatsSerializer(serializers.Serializer):
    chat = serializers.DictField(child=serializers.JSONField(), help_text="Replies started, completed, cancelled, "
                                 "refused busy, failed; in flight now and their tokens so far.")
    endpoints = serializers.DictField(child=serializers.JSONField(), help_text="Requests, texts, tokens per endpoint.")
    models = serializers.DictField(child=serializers.JSONField(), help_text="Stats of each loaded model that has them.")
