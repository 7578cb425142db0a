from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.core.errors import error_body, error_response


def _limit_for(content_type: str) -> int:
    is_upload = content_type.startswith("multipart/form-data")
    return settings.TRELLIS_MAX_UPLOAD_BYTES if is_upload else settings.TRELLIS_MAX_BODY_BYTES


class BodySizeLimitMiddleware:
    """Refuses oversized bodies with 413 before anything reads them.

    Multipart uploads (datasets, catalogue files) may use ``TRELLIS_MAX_UPLOAD_BYTES``;
    every other body ``TRELLIS_MAX_BODY_BYTES``. Bodies without Content-Length (chunked) are
    capped by ``AsgiBodySizeLimit`` while they arrive.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response("bad_request", "Content-Length is not a number.", 400)
        limit = _limit_for(request.META.get("CONTENT_TYPE", ""))
        if length > limit:
            return error_response(
                "payload_too_large",
                f"Request body is {length} bytes; the limit is {limit} bytes.",
                413,
                {"limit_bytes": limit},
            )
        return self.get_response(request)


class _BodyTooLarge(Exception):
    pass


class AsgiBodySizeLimit:
    """ASGI wrapper: 413 for a body sent without Content-Length (chunked) once it passes the limit.

    Django's ASGI handler reads such a body to its end into a temporary file, however long,
    before any middleware runs; this counts the bytes as they arrive instead.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        if scope["type"] != "http" or b"content-length" in headers:
            await self.app(scope, receive, send)
            return
        limit = _limit_for(headers.get(b"content-type", b"").decode("latin-1"))
        received = 0

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:  # raised while Django reads the body: no response has started
            body = json.dumps(error_body("payload_too_large", f"Request body is over the limit of {limit} bytes.",
                                         {"limit_bytes": limit})).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
