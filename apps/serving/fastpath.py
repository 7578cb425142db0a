"""``POST /v1/embeddings`` answered ahead of Django's stack when nothing about it needs Django.

An embedding request is small and frequent: sixteen clients sending one short text each keep a
server busy with request handling more than with the model. Through Django (ASGI handler,
middleware, DRF request, serializer, response) a request costs about 1.7 ms of event-loop CPU
(py-spy under 16 clients, bench/bench_serving.py), as much as a third of the text's share of a
batched forward pass on a CPU. This ASGI wrapper answers the requests whose every step is
already known in this process, with the same checks, and hands all others to Django unchanged:

- an API token in ``Authorization`` (``Bearer`` or ``Token``) that ``apps.accounts.token_cache``
  remembers: knox checked it on an earlier request through Django, and revocations drop it;
- no ``Origin`` header (a browser's cross-origin request keeps Django's CORS handling), no
  redirect to HTTPS due (``SECURE_SSL_REDIRECT``), a ``Content-Length`` (Django reads a body
  without one as empty);
- a JSON object body whose fields pass the serializer's rules (``check_texts`` and the same
  bounds); an invalid request goes to Django, which names the fault;
- a caller whose role may use the embedder; ``model`` naming the role or the version serving
  now, the registry synced with the database lately and the model loaded (no I/O);
- the per-token throttle allows it (a refusal goes to Django, which answers the 429).

The body read here is replayed to Django when it takes over, and the throttle is the last
check, so a request is counted once whichever path answers it. The answer is byte for byte
Django's (same JSON encoder) with the headers its middleware would add (security headers,
CSP, ``X-Frame-Options``; tests compare the two paths). Served counts and token usage are
recorded as on the Django path (``embeddings_create``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from knox.settings import knox_settings
from rest_framework import serializers

from apps.accounts.token_cache import token_cache_get
from apps.serving.errors import openai_error
from apps.serving.exceptions import ModelForbidden, ServingError
from apps.serving.serializers import check_texts
from apps.serving.services.catalog import model_check_access, serving_ready
from apps.serving.services.inference import embedding_payload, embeddings_create
from apps.serving.throttling import ServingRateThrottle

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PATH = "/v1/embeddings"
ROLE = "embedder"
MAX_USER_CHARS = 256  # EmbeddingsRequestSerializer's bound of ``user``


@dataclass(frozen=True)
class _Request:
    """What a fast request needs once its checks passed."""

    user: Any
    token: Any
    texts: list[str]
    model_id: str
    embedder: Any
    encoding_format: str


class _Caller:
    """The two attributes ``ServingRateThrottle`` reads of a request (a token caller's)."""

    def __init__(self, user: Any, token: Any) -> None:
        self.user, self.auth = user, token


class _View:
    throttle_scope = "serving_embeddings"  # apps.serving.api.EmbeddingsApi's


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope.get("headers") or () if key == name), None)


def _token_key(scope: Scope) -> str | None:
    """The key of ``Authorization: Bearer|Token <key>`` (what ``OpenAICompatMixin`` accepts)."""
    header = _header(scope, b"authorization")
    if header is None:
        return None
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() not in (b"bearer", knox_settings.AUTH_HEADER_PREFIX.lower().encode()):
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None


def _is_secure(scope: Scope) -> bool:
    """Django's ``request.is_secure()`` for this scope."""
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        name, expected = proxy
        header = name.lower().removeprefix("http_").replace("_", "-").encode("latin-1")
        value = _header(scope, header)
        return value is not None and value.split(b",")[0].strip().decode("latin-1") == expected
    return scope.get("scheme") == "https"


def _texts(value: Any) -> list[str] | None:
    try:
        return check_texts([value] if isinstance(value, str) else value, name="input")
    except serializers.ValidationError:
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # as DRF's strict JSONParser


def _plain_text(value: Any, limit: int) -> bool:
    """What a DRF ``CharField`` accepts unchanged: a string within ``limit``, no NUL or surrogate."""
    return (isinstance(value, str) and len(value) <= limit and "\x00" not in value
            and not any("\ud800" <= c <= "\udfff" for c in value))


def _checked(scope: Scope, key: str, body: bytes) -> _Request | None:
    """The request (``key``: its API token) if every check passes here; None: Django answers it."""
    if _header(scope, b"origin") is not None or (settings.SECURE_SSL_REDIRECT and not _is_secure(scope)):
        return None
    if not (_header(scope, b"content-length") or b"").isdigit():  # Django reads a body by its length only
        return None
    remembered = token_cache_get(key)
    if remembered is None:
        return None
    user, token = remembered
    try:
        model_check_access(user=user, role=ROLE)
    except ModelForbidden:
        return None
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError:  # UnicodeDecodeError included
        return None
    if not isinstance(payload, dict):
        return None
    model, dimensions = payload.get("model"), payload.get("dimensions")
    encoding = payload.get("encoding_format", "float")
    texts = _texts(payload.get("input"))
    if texts is None or not isinstance(model, str) or encoding not in ("float", "base64"):
        return None
    if "user" in payload and not _plain_text(payload["user"], MAX_USER_CHARS):
        return None
    ready = serving_ready(ROLE)
    if ready is None or model.strip() not in (ROLE, ready[0]):  # (either is a valid CharField value)
        return None
    model_id, embedder = ready
    if dimensions is not None and (type(dimensions) is not int or dimensions != embedder.dim):
        return None
    return _Request(user, token, texts, model_id, embedder, encoding)


def _security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """What Django's SecurityMiddleware, django-csp and XFrameOptionsMiddleware add."""
    from csp.utils import build_policy

    headers: list[tuple[str, str]] = []
    if settings.SECURE_HSTS_SECONDS and _is_secure(scope):
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append(("Strict-Transport-Security", value))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        headers.append(("Referrer-Policy", policy if isinstance(policy, str) else ",".join(policy)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    csp = build_policy()
    if csp:
        headers.append(("Content-Security-Policy", csp))
    headers.append(("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()))
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _respond(scope: Scope, send: Send, status: int, payload: dict[str, Any],
                   extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(payload).encode()  # JsonResponse's encoding (DjangoJSONEncoder adds nothing here)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *_security_headers(scope), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body and the messages it came in (to replay them to Django)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":  # the client went away
            return b"", messages
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), messages


class EmbeddingsFastPath:
    """ASGI wrapper of the HTTP application: ``POST /v1/embeddings`` as in the module notes."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = None
        if (scope["type"] == "http" and scope.get("method") == "POST"
                and scope.get("path", "").removeprefix(scope.get("root_path", "")) == PATH):
            key = _token_key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        request = _checked(scope, key, body) if messages[-1]["type"] == "http.request" else None
        if request is None or not await _throttle_allows(request):
            await self.app(scope, _replaying(messages, receive), send)
            return
        await self._answer(scope, send, request)

    async def _answer(self, scope: Scope, send: Send, request: _Request) -> None:
        try:
            result = await embeddings_create(embedder=request.embedder, texts=request.texts)
        except ServingError as exc:
            extra = [(b"retry-after", str(exc.retry_after_s).encode())] if exc.retry_after_s else []
            await _respond(scope, send, exc.http_status,
                           openai_error(exc.message, exc.error_type, param=exc.param, code=exc.code), extra)
            return
        except Exception:  # a bug or an exhausted machine: logged, answered as Django's 500 would be
            log.exception("embedding request failed")
            await _respond(scope, send, 500, openai_error("Internal server error.", "server_error",
                                                          code="server_error"))
            return
        await _respond(scope, send, 200, {
            "object": "list",
            "data": [{"object": "embedding", "index": i,
                      "embedding": embedding_payload(vector, request.encoding_format)}
                     for i, vector in enumerate(result.vectors)],
            "model": request.model_id,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        })


async def _throttle_allows(request: _Request) -> bool:
    """The per-token throttle's decision; False (Django decides and answers) if it fails."""
    try:
        return await ServingRateThrottle().aallow_request(_Caller(request.user, request.token), _View())
    except Exception:  # the shared throttle cache is down: Django's path answers as it would
        log.warning("throttle check failed on the fast path; handing the request to Django", exc_info=True)
        return False


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    queue = list(messages)

    async def replay() -> Message:
        return queue.pop(0) if queue else await receive()

    return replay
