"""One error shape for every API response that is not a success.

``{"error": {"code": "not_found", "message": "Not found.", "details": {...}}}`` for
validation errors (400), malformed JSON (400), 401, 403, 404, 413, 429 and 500.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

API_PREFIX = "/api/"

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(code: str, message: str, http_status: int, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=http_status)


def _first_message(details: Any) -> str:
    """A readable one-liner from DRF's nested validation details."""
    if isinstance(details, dict):
        for field, value in details.items():
            inner = _first_message(value)
            return inner if field in ("non_field_errors", "detail") else f"{field}: {inner}"
    if isinstance(details, list) and details:
        return _first_message(details[0])
    return str(details)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler that rewrites every error into the shared shape."""
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "Request body is larger than the limit allowed."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        code, message, details = "invalid", _first_message(exc.detail), exc.detail
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = getattr(detail, "code", None) or exc.default_code
        message = str(detail) if not isinstance(detail, (dict, list)) else _first_message(detail)
        details = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            details = {"retry_after_seconds": int(exc.wait)}
    else:  # pragma: no cover - exception_handler only handles APIException/Http404/PermissionDenied
        code, message, details = "error", str(exc), {}
    response.data = error_body(str(code), message, details)
    return response


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX) or "application/json" in request.headers.get("Accept", "")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return error_response("not_found", f"No route matches {request.path}.", 404)
    return render(request, "core/error.html", {"status": 404, "message": "Page not found."}, status=404)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = str(exception) if exception and str(exception) else "You do not have access to this page."
    if _wants_json(request):
        return error_response("permission_denied", message, 403)
    return render(request, "core/error.html", {"status": 403, "message": message}, status=403)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return error_response("bad_request", "Bad request.", 400)
    return render(request, "core/error.html", {"status": 400, "message": "Bad request."}, status=400)


PLAIN_500 = ("<!doctype html><html lang=en><head><meta charset=utf-8><title>Server error</title></head>"
             "<body><h1>500</h1><p>Something went wrong.</p></body></html>")


def handler500(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return error_response("server_error", "Internal server error.", 500)
    try:
        return render(request, "core/error.html", {"status": 500, "message": "Something went wrong."}, status=500)
    except Exception:  # the page reads the session and the user: with the database down, that fails too
        logger.exception("the 500 page could not be rendered; sending the plain one")
        return HttpResponse(PLAIN_500, status=500)
