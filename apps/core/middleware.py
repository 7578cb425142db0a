from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.core.errors import error_response


class BodySizeLimitMiddleware:
    """Refuses oversized bodies with 413 before anything reads them.

    Multipart uploads (datasets, catalogue files) may use ``TRELLIS_MAX_UPLOAD_BYTES``;
    every other body ``TRELLIS_MAX_BODY_BYTES``. Bodies without Content-Length are capped
    by Django's DATA_UPLOAD_MAX_MEMORY_SIZE, which the API error handler maps to 413 too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response("bad_request", "Content-Length is not a number.", 400)
        is_upload = request.META.get("CONTENT_TYPE", "").startswith("multipart/form-data")
        limit = settings.TRELLIS_MAX_UPLOAD_BYTES if is_upload else settings.TRELLIS_MAX_BODY_BYTES
        if length > limit:
            return error_response(
                "payload_too_large",
                f"Request body is {length} bytes; the limit is {limit} bytes.",
                413,
                {"limit_bytes": limit},
            )
        return self.get_response(request)
