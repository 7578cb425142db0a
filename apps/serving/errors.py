"""Error responses of the inference API.

``/v1/*`` answers in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so
that OpenAI SDKs raise their usual exceptions (``BadRequestError``, ``AuthenticationError``,
``NotFoundError``, ``RateLimitError``, ...); ``/api/ml/*`` answers in the Trellis shape
(``apps.core.errors``). Both go through DRF's exception handling, so the headers DRF sets
(``WWW-Authenticate`` on 401, ``Retry-After`` on 429) come along.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from apps.core.errors import api_exception_handler
from apps.serving.exceptions import ServingError


class ServingApiException(exceptions.APIException):
    """A ``ServingError`` as a DRF exception (status, code, param and Retry-After kept)."""

    def __init__(self, error: ServingError) -> None:
        super().__init__(detail=error.message, code=error.code)
        self.status_code = error.http_status
        self.param = error.param
        self.error_type = error.error_type
        self.wait = error.retry_after_s  # DRF's handler turns ``wait`` into Retry-After


def as_api_exception(exc: Exception) -> Exception:
    return ServingApiException(exc) if isinstance(exc, ServingError) else exc


def openai_error(message: str, error_type: str, *, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _first_error(detail: Any, path: str = "") -> tuple[str, Any]:
    """The first leaf of DRF's nested validation errors and its path, e.g. ``messages[0].content``."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "detail"):
                sub = path
            elif isinstance(key, int):  # ListField: {index: errors}
                sub = f"{path}[{key}]"
            else:
                sub = f"{path}.{key}" if path else str(key)
            return _first_error(value, sub)
    if isinstance(detail, list):
        if any(isinstance(item, dict) for item in detail):  # a nested serializer with many=True
            for index, item in enumerate(detail):
                if item:
                    return _first_error(item, f"{path}[{index}]")
        if detail:
            return _first_error(detail[0], path)
    return path, detail


# DRF exception -> (OpenAI error type, code)
_TYPES: list[tuple[type[exceptions.APIException], str, str | None]] = [
    (exceptions.NotAuthenticated, "authentication_error", "missing_api_key"),
    (exceptions.AuthenticationFailed, "authentication_error", "invalid_api_key"),
    (exceptions.PermissionDenied, "permission_error", "permission_denied"),
    (exceptions.Throttled, "rate_limit_error", "rate_limit_exceeded"),
    (exceptions.NotFound, "invalid_request_error", "not_found"),
    (exceptions.ParseError, "invalid_request_error", "invalid_json"),
]


def openai_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler for ``/v1/*``: every error in OpenAI's shape."""
    exc = as_api_exception(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's 500 handling takes over
    assert isinstance(exc, exceptions.APIException)  # noqa: S101 - exception_handler answered, so it is one
    param: str | None = None
    if isinstance(exc, ServingApiException):
        message, error_type, param = str(exc.detail), exc.error_type, exc.param
        code: str | None = getattr(exc.detail, "code", None)
    elif isinstance(exc, exceptions.ValidationError):
        path, leaf = _first_error(exc.detail)
        param = path or None
        message = f"Invalid '{path}': {leaf}" if path else str(leaf)
        error_type, code = "invalid_request_error", getattr(leaf, "code", None) or "invalid"
    else:
        error_type, code = "invalid_request_error", str(exc.default_code)
        for klass, mapped_type, mapped_code in _TYPES:
            if isinstance(exc, klass):
                error_type, code = mapped_type, mapped_code
                break
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else _first_error(exc.detail)[1]
        if isinstance(exc, exceptions.NotAuthenticated):
            message = "No API key: send the header 'Authorization: Token <your Trellis API token>'."
        elif isinstance(exc, exceptions.AuthenticationFailed):
            message = f"Incorrect API key: {exc.detail}"
        if response.status_code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
            error_type = "server_error"
    response.data = openai_error(str(message), error_type, param=param, code=code)
    return response


def trellis_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler for ``/api/ml/*``: the Trellis shape, naming the field at fault."""
    api_exc = as_api_exception(exc)
    response = api_exception_handler(api_exc, context)
    if response is not None and isinstance(api_exc, ServingApiException) and api_exc.param:
        response.data["error"]["details"] = {"param": api_exc.param}
    return response
