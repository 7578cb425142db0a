"""DRF API views whose handlers are coroutines, served as plain async Django views.

DRF views are synchronous; under ASGI Django would run them in a worker thread, which cannot
stream server-sent events from an async generator or notice a client that goes away. An
``AsyncApiView`` keeps everything else of DRF: ``as_view()`` returns an ``async def`` view
(so Django's ASGI handler runs it on the event loop and cancels it when the client
disconnects), while authentication, permissions, throttles and input validation run as
configured (``DEFAULT_AUTHENTICATION_CLASSES``: token, then session). drf-spectacular
documents the class like any ``APIView`` (the view function carries ``cls``, as DRF's own do).

What touches the database runs in a worker thread; the rest stays on the event loop, so for a
request with a known API token the view makes one thread hop (validation and ``prepare``):

- an API token checked in the last seconds is taken from ``apps.accounts.token_cache`` (no
  query); any other caller is authenticated by DRF in a worker thread, and a token it
  accepts is remembered; permissions read only the user (roles cached with it);
- throttles with an ``aallow_request`` (``ServingRateThrottle``) decide on the event loop
  and meet the shared cache at most every half second; others run in a worker thread.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from knox.auth import TokenAuthentication
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from apps.accounts.token_cache import token_cache_generation, token_cache_lookup, token_cache_put
from apps.serving.errors import openai_exception_handler, trellis_exception_handler


class JsonOnlyNegotiation(BaseContentNegotiation):
    """Always JSON in, JSON (or event-stream) out, whatever ``Accept`` says: SDKs send
    ``Accept: application/json`` even for streams, ``curl`` sends ``*/*``."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0]

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def to_django_response(response: HttpResponseBase) -> HttpResponseBase:
    """A DRF ``Response`` as a plain ``JsonResponse`` (headers kept): Django would otherwise
    hop to a thread just to render it."""
    if not isinstance(response, Response):
        return response
    out = JsonResponse(response.data, status=response.status_code, safe=False)
    for header, value in response.items():
        if header.lower() != "content-type":
            out[header] = value
    return out


class AsyncApiView(APIView):
    """Base of the inference endpoints: ``async def post(self, request)`` handlers.

    Before the handler runs: authentication, permission and throttle checks (see the module
    notes for which run where), then, in one worker-thread hop, ``input_serializer``
    validation (``self.data``) and ``prepare`` (``self.prepared``), where a view resolves
    what needs the ORM (the model to use). Permission classes must not query the database
    (``HasRole`` reads the roles cached on the user).
    """

    parser_classes = (JSONParser,)
    renderer_classes = (JSONRenderer,)
    content_negotiation_class = JsonOnlyNegotiation
    input_serializer: type[Serializer] | None = None

    data: Any = None
    prepared: Any = None

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Coroutine[Any, Any, HttpResponseBase]]:  # type: ignore[override]
        for key in initkwargs:
            if not hasattr(cls, key):
                raise TypeError(f"{cls.__name__}.as_view() got an unexpected keyword {key!r}")

        async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            return await cls(**initkwargs).adispatch(request, *args, **kwargs)

        view.cls = cls  # type: ignore[attr-defined]
        view.initkwargs = initkwargs  # type: ignore[attr-defined]
        view.csrf_exempt = True  # type: ignore[attr-defined]  # SessionAuthentication enforces CSRF itself
        view.shared_thread = True  # type: ignore[attr-defined]  # config.asgi: no thread per request
        view.__name__ = cls.__name__
        view.__qualname__ = cls.__qualname__
        view.__doc__ = cls.__doc__
        view.__module__ = cls.__module__
        return view

    def prepare(self, request: Request, data: Any) -> Any:
        """Runs in the worker thread after validation (ORM allowed); its result is ``self.prepared``."""
        return None

    def check_throttles(self, request: Request) -> None:
        """Nothing here: ``ainitial`` runs the throttles after ``initial`` (``acheck_throttles``)."""

    async def acheck_throttles(self, request: Request) -> None:
        """DRF's ``check_throttles``, awaiting the throttles that can decide on the event loop."""
        waits = []
        for throttle in self.get_throttles():
            check = getattr(throttle, "aallow_request", None) or sync_to_async(throttle.allow_request)
            if not await check(request, self):
                waits.append(throttle.wait())
        if waits:
            self.throttled(request, max((wait for wait in waits if wait is not None), default=None))

    def _initial_and_remember(self, request: Request, generation: int, *args: Any, **kwargs: Any) -> None:
        self.initial(request, *args, **kwargs)
        if isinstance(request.successful_authenticator, TokenAuthentication):
            token_cache_put(request.user, request.auth, generation=generation)

    async def ainitial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's ``initial`` (authentication, permissions, throttles) with no query on the event loop."""
        remembered = token_cache_lookup(request)
        if remembered is None:
            await sync_to_async(self._initial_and_remember)(request, token_cache_generation(), *args, **kwargs)
        else:
            request.user, request.auth = remembered
            # What DRF's _authenticate sets (DRF reads it for successful_authenticator).
            request._authenticator = next(
                (a for a in request.authenticators if isinstance(a, TokenAuthentication)), None
            )
            self.initial(request, *args, **kwargs)
        await self.acheck_throttles(request)

    def _validate_and_prepare(self, request: Request) -> None:
        if self.input_serializer is not None:
            serializer = self.input_serializer(data=request.data, context={"request": request, "view": self})
            serializer.is_valid(raise_exception=True)
            self.data = serializer.validated_data
        self.prepared = self.prepare(request, self.data)

    async def adispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.args, self.kwargs = args, kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            method = (request.method or "").lower()
            handler = getattr(self, method, None) if method in self.http_method_names else None
            if handler is None:
                raise exceptions.MethodNotAllowed(request.method or "")
            await self.ainitial(drf_request, *args, **kwargs)
            if inspect.iscoroutinefunction(handler):
                await sync_to_async(self._validate_and_prepare)(drf_request)
                response = await handler(drf_request, *args, **kwargs)
            else:  # one of DRF's own (OPTIONS): no input, sync
                response = await sync_to_async(handler)(drf_request, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - handle_exception renders API errors, re-raises the rest
            response = self.handle_exception(exc)
        return to_django_response(response)


class OpenAICompatMixin:
    """``/v1/*``: what OpenAI's SDKs send and expect.

    The SDKs send the API key as ``Authorization: Bearer <key>``; Trellis tokens are read by
    the configured authentication classes from ``Authorization: <prefix> <key>`` (``Token``).
    A Bearer header is handed to them under their own prefix, so they (and nothing made
    here) check the token. Errors come back in OpenAI's shape.
    """

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        drf_request: Request = super().initialize_request(request, *args, **kwargs)  # type: ignore[misc]
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() == "bearer" and key.strip() and drf_request.authenticators:
            prefix = drf_request.authenticators[0].authenticate_header(drf_request)
            if prefix and prefix.lower() != "bearer":
                request.META["HTTP_AUTHORIZATION"] = f"{prefix} {key.strip()}"
        return drf_request

    def get_exception_handler(self) -> Callable[..., Response | None]:
        return openai_exception_handler


class TrellisErrorsMixin:
    """``/api/ml/*``: errors in the Trellis shape, service errors included."""

    def get_exception_handler(self) -> Callable[..., Response | None]:
        return trellis_exception_handler
