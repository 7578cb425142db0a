"""Request body limits, enforced in the ASGI layer before Django reads a byte of the body.

Every HTTP request reaches Django through ``config.asgi`` (there is no WSGI entry point), and
Django's ASGI handler reads the whole body into a temporary file before any Django middleware
runs. So the limits live here, in front of it, and there is no Django-middleware copy:

- a declared ``Content-Length`` over the limit is answered 413 at once: the app is never
  called and the body is never received;
- a malformed or negative ``Content-Length`` (or two that disagree) is answered 400;
- whatever the headers say, the bytes are counted as they arrive: a chunked body past the
  limit gets 413, a body longer than its ``Content-Length`` gets 400, and reading stops there.

Refusals close the connection (``Connection: close``), so the server stops reading the rest
of the body instead of draining it for the next keep-alive request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

from apps.core.errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def body_limit(content_type: str) -> int:
    """Bytes allowed for a body of ``content_type``: multipart uploads (datasets, catalogue
    files) get ``TRELLIS_MAX_UPLOAD_BYTES``, every other body ``TRELLIS_MAX_BODY_BYTES``."""
    is_upload = content_type.strip().lower().startswith("multipart/form-data")
    return settings.TRELLIS_MAX_UPLOAD_BYTES if is_upload else settings.TRELLIS_MAX_BODY_BYTES


class BadContentLength(ValueError):
    pass


def declared_length(values: list[bytes]) -> int | None:
    """The one body length the ``Content-Length`` header values declare; None when absent.

    RFC 9110 section 8.6: the value is one or more ASCII digits; a list of identical values
    ("42, 42", or the header repeated) is the same length, differing values are an error.
    """
    if not values:
        return None
    parts = [part.strip() for value in values for part in value.split(b",")]
    if not all(part.isdigit() for part in parts):  # bytes.isdigit: ASCII 0-9 only, so "-1" fails
        raise BadContentLength("Content-Length must be a non-negative whole number of bytes.")
    lengths = {int(part) for part in parts}
    if len(lengths) > 1:
        raise BadContentLength("The request declares more than one Content-Length.")
    return lengths.pop()


class _Refused(Exception):
    """Raised from ``receive`` when the body breaks a limit: Django is still reading it."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


OPENAI_PATH_PREFIX = "/v1/"  # apps.serving's OpenAI-compatible API: its SDKs parse OpenAI's error shape


def _error_json(path: str, refusal: _Refused) -> dict[str, Any]:
    if path.startswith(OPENAI_PATH_PREFIX):
        return {"error": {"message": refusal.message, "type": "invalid_request_error", "param": None,
                          "code": refusal.code}}
    return error_body(refusal.code, refusal.message, refusal.details)


async def _refuse(send: Send, refusal: _Refused, path: str = "") -> None:
    body = json.dumps(_error_json(path, refusal)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int, size: int | None = None) -> _Refused:
    message = (
        f"Request body is {size} bytes; the limit is {limit} bytes."
        if size is not None
        else f"Request body is over the limit of {limit} bytes."
    )
    return _Refused(413, "payload_too_large", message, {"limit_bytes": limit})


class AsgiBodySizeLimit:
    """ASGI wrapper around the HTTP application that bounds every request body (see the module)."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        content_type = next((v for k, v in headers if k == b"content-type"), b"").decode("latin-1")
        limit = body_limit(content_type)
        try:
            declared = declared_length([v for k, v in headers if k == b"content-length"])
        except BadContentLength as exc:
            await _refuse(send, _Refused(400, "bad_request", str(exc)), scope.get("path", ""))
            return
        if declared is not None and declared > limit:
            # Before the app: nothing is received.
            await _refuse(send, _too_large(limit, declared), scope.get("path", ""))
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
                if declared is not None and received > declared:
                    raise _Refused(400, "bad_request", f"Request body is longer than its Content-Length ({declared}).")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _Refused as refusal:
            # Django reads the whole body before it answers, so no response has begun; an app
            # that streamed one first just ends here and the server drops the connection.
            if not response_started:
                await _refuse(send, refusal, scope.get("path", ""))
