"""The inference API: ``/v1/*`` (OpenAI-compatible) and ``/api/ml/*`` (Trellis).

Who may call what: every endpoint needs a signed-in caller (API token or session) holding a
Trellis role; each model is for the roles that own it (``apps.mlops.permissions.ROLE_OWNERS``):
embeddings for every role, chat for agents, intent for agents, sentiment and entities for
analysts; admins may use all. Anonymous -> 401, a role without the model -> 403.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import HasRole, IsAdminRole
from apps.accounts.roles import Role
from apps.serving import serializers as s
from apps.serving.asyncapi import AsyncApiView, OpenAICompatMixin, TrellisErrorsMixin
from apps.serving.errors import openai_error
from apps.serving.services.catalog import (
    model_check_access,
    model_list,
    model_load,
    model_resolve,
    model_retrieve,
    serving_model,
)
from apps.serving.services.chat import ChatParams, chat_collect, chat_events, chat_start, completion_body, tracker
from apps.serving.services.inference import (
    classify,
    embedding_payload,
    embeddings_create,
    entities_extract,
    serving_stats,
)
from apps.serving.throttling import ServingRateThrottle

AnyRole = HasRole.of(Role.AGENT, Role.ANALYST, Role.MERCHANDISER)  # admins pass every role check

V1_TAG = "inference (OpenAI-compatible)"
ML_TAG = "inference"


def _openai_errors(*codes: int) -> dict[int, OpenApiResponse]:
    meaning = {
        400: "Invalid request (the field at fault is `param`).",
        401: "No API token, or a wrong one.",
        403: "The caller's role may not use this model.",
        404: "No such model.",
        429: "Rate limit of the token reached, or the chat model's queue is full (see Retry-After).",
    }
    return {code: OpenApiResponse(s.OpenAIErrorSerializer, description=meaning[code]) for code in codes}


def _trellis_errors(*codes: int) -> dict[int, OpenApiResponse]:
    meaning = {
        400: "Invalid input (details per field).",
        401: "Not signed in.",
        403: "The caller's role may not use this model.",
        429: "Rate limit of the token reached (see Retry-After).",
    }
    return {code: OpenApiResponse(s.ServingErrorSerializer, description=meaning[code]) for code in codes}


# --- /v1 ----------------------------------------------------------------------------------


class EmbeddingsApi(OpenAICompatMixin, AsyncApiView):
    """Embeddings of one or more texts (OpenAI's ``POST /v1/embeddings``)."""

    permission_classes = (AnyRole,)
    throttle_classes = (ServingRateThrottle,)
    throttle_scope = "serving_embeddings"
    input_serializer = s.EmbeddingsRequestSerializer

    def prepare(self, request: Request, data: dict[str, Any]) -> Any:
        model_check_access(user=request.user, role="embedder")
        return model_resolve(model=data["model"], role="embedder"), model_load("embedder")

    @extend_schema(
        tags=[V1_TAG],
        summary="Create embeddings",
        request=s.EmbeddingsRequestSerializer,
        responses={200: s.EmbeddingsResponseSerializer, **_openai_errors(400, 401, 403, 404, 429)},
    )
    async def post(self, request: Request) -> JsonResponse:
        served, embedder = self.prepared
        result = await embeddings_create(embedder=embedder, texts=self.data["input"],
                                         dimensions=self.data.get("dimensions"))
        encoding = self.data["encoding_format"]
        return JsonResponse({
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": embedding_payload(vector, encoding)}
                     for i, vector in enumerate(result.vectors)],
            "model": served.id,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        })


class ChatCompletionsApi(OpenAICompatMixin, AsyncApiView):
    """A reply of the chat model (OpenAI's ``POST /v1/chat/completions``), whole or streamed.

    With ``"stream": true`` the answer is server-sent events (``data: {chat.completion.chunk}``
    ... ``data: [DONE]``); the chunk with ``finish_reason`` carries ``usage``, and with
    ``stream_options.include_usage`` a last chunk with empty ``choices`` does too, as OpenAI's.
    A client that disconnects stops its generation within one token.
    """

    permission_classes = (AnyRole,)
    throttle_classes = (ServingRateThrottle,)
    throttle_scope = "serving_chat"
    input_serializer = s.ChatCompletionRequestSerializer

    def prepare(self, request: Request, data: dict[str, Any]) -> Any:
        model_check_access(user=request.user, role="chat-lm")
        return model_resolve(model=data["model"], role="chat-lm"), model_load("chat-lm")

    @extend_schema(
        tags=[V1_TAG],
        summary="Create a chat completion",
        request=s.ChatCompletionRequestSerializer,
        responses={
            (200, "application/json"): s.ChatCompletionResponseSerializer,
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="With stream: server-sent events of chat.completion.chunk objects."
            ),
            **_openai_errors(400, 401, 403, 404, 429),
        },
    )
    async def post(self, request: Request) -> JsonResponse | StreamingHttpResponse:
        served, lm = self.prepared
        data = self.data
        params = ChatParams(messages=data["messages"], max_new_tokens=data["max_new_tokens"],
                            temperature=data["temperature"], top_p=data["top_p"], stop=data["stop"],
                            seed=data.get("seed"))
        run = await chat_start(lm=lm, params=params, model=served.id)
        if not data["stream"]:
            return JsonResponse(completion_body(run, await chat_collect(run)))
        response = StreamingHttpResponse(chat_events(run, include_usage=data["include_usage"]),
                                         content_type="text/event-stream; charset=utf-8")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response


class ModelListApi(OpenAICompatMixin, APIView):
    """The models the caller may use (OpenAI's ``GET /v1/models``): per role, the role itself
    (an alias of what it serves), its serving version and the candidates awaiting promotion."""

    permission_classes = (AnyRole,)
    renderer_classes = (JSONRenderer,)

    @extend_schema(tags=[V1_TAG], summary="List models", operation_id="v1_models_list",
                   responses={200: s.ModelListSerializer, **_openai_errors(401, 403)})
    def get(self, request: Request) -> Response:
        return Response({"object": "list", "data": [m.as_openai() for m in model_list(user=request.user)]})


class ModelDetailApi(OpenAICompatMixin, APIView):
    """One model (OpenAI's ``GET /v1/models/{model}``)."""

    permission_classes = (AnyRole,)
    renderer_classes = (JSONRenderer,)

    @extend_schema(
        tags=[V1_TAG],
        summary="Retrieve a model",
        parameters=[OpenApiParameter("model_id", str, OpenApiParameter.PATH, description="A model id or role.")],
        responses={200: s.ModelSerializer, **_openai_errors(401, 403, 404)},
    )
    def get(self, request: Request, model_id: str) -> Response:
        return Response(model_retrieve(user=request.user, model_id=model_id).as_openai())


async def v1_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other ``/v1/`` path: 404 in OpenAI's shape (this server has no such endpoint)."""
    message = (f"Unknown endpoint {request.method} {request.path}: this server offers /v1/embeddings, "
               "/v1/chat/completions and /v1/models.")
    return JsonResponse(openai_error(message, "invalid_request_error", code="unknown_url"), status=404)


# --- /api/ml ------------------------------------------------------------------------------


class ClassifyApi(TrellisErrorsMixin, AsyncApiView):
    """Classifies texts with the serving intent or sentiment model."""

    permission_classes = (AnyRole,)
    throttle_classes = (ServingRateThrottle,)
    throttle_scope = "serving_classify"
    input_serializer = s.ClassifyRequestSerializer

    def prepare(self, request: Request, data: dict[str, Any]) -> Any:
        model_check_access(user=request.user, role=data["role"])
        return serving_model(data["role"]), model_load(data["role"])

    @extend_schema(tags=[ML_TAG], summary="Classify texts (intent or sentiment)",
                   request=s.ClassifyRequestSerializer,
                   responses={200: s.ClassifyResponseSerializer, **_trellis_errors(400, 401, 403, 429)})
    async def post(self, request: Request) -> JsonResponse:
        served, classifier = self.prepared
        results = await classify(classifier=classifier, role=served.role, texts=self.data["texts"])
        return JsonResponse({"role": served.role, "version": served.id, "results": results})


class EntitiesApi(TrellisErrorsMixin, AsyncApiView):
    """Named entities (organisations, tickers, people, places, ...) with character offsets."""

    permission_classes = (AnyRole,)
    throttle_classes = (ServingRateThrottle,)
    throttle_scope = "serving_classify"
    input_serializer = s.EntitiesRequestSerializer

    def prepare(self, request: Request, data: dict[str, Any]) -> Any:
        model_check_access(user=request.user, role="ner")
        return serving_model("ner"), model_load("ner")

    @extend_schema(tags=[ML_TAG], summary="Find entities in texts",
                   request=s.EntitiesRequestSerializer,
                   responses={200: s.EntitiesResponseSerializer, **_trellis_errors(400, 401, 403, 429)})
    async def post(self, request: Request) -> JsonResponse:
        served, extractor = self.prepared
        results = await entities_extract(extractor=extractor, texts=self.data["texts"])
        return JsonResponse({"role": served.role, "version": served.id, "results": results})


class ServingStatsApi(TrellisErrorsMixin, APIView):
    """What this server process's inference API did (admins): chat replies started, completed,
    cancelled and refused, tokens in flight, per-endpoint counts, and the loaded models' stats."""

    permission_classes = (IsAdminRole,)
    renderer_classes = (JSONRenderer,)

    @extend_schema(tags=[ML_TAG], summary="Inference statistics of this server process",
                   responses={200: s.ServingStatsSerializer, **_trellis_errors(401, 403)})
    def get(self, request: Request) -> Response:
        return Response({"chat": tracker.snapshot(), **serving_stats()})
