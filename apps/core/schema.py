"""OpenAPI generation (drf-spectacular): the error responses every API view can give, documented.

A view documents its successes and the errors of its own logic with ``@extend_schema``; the
errors that come from the framework around it (not signed in, wrong role, throttled, invalid
or oversized body, unknown object) are added here from what the view is made of, so that the
schema lists every status a client can see. The schema fuzz test (tests/servers/test_api_fuzz.py)
fails on any status the schema does not list.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: `invalid`, `not_found`, `throttled`, ...")
    message = serializers.CharField(help_text="One readable sentence.")
    details = serializers.JSONField(help_text="Per-field messages for `invalid`; otherwise an object, often empty.")


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API (apps/core/errors.py)."""

    error = ErrorBodySerializer()


ERROR_MEANINGS = {
    400: "Invalid input (`details` per field), or a body that is not valid JSON.",
    401: "Not signed in, or an unknown, expired or revoked token.",
    403: "The caller's role does not allow this (or the CSRF check failed for a session).",
    404: "No such object, or one the caller may not see.",
    413: "The request body is over the size limit.",
    415: "The body's Content-Type is not one this operation accepts.",
    429: "Too many requests (see the Retry-After header).",
}


class TrellisAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the framework's error responses of each operation."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        # An added error has the same body as the view's own documented 401, where it has one
        # (the OpenAI-compatible /v1 views answer in OpenAI's shape); else the project's.
        house = responses.get("401", {}).get("content")
        for code in self._framework_errors(operation):
            if str(code) in responses:
                continue
            response = self._get_response_for_code(
                OpenApiResponse(ErrorSerializer, description=ERROR_MEANINGS[code]), str(code)
            )
            if house:
                response["content"] = house
            responses[str(code)] = response
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _framework_errors(self, operation: dict[str, Any]) -> list[int]:
        authenticators = self.view.get_authenticators()
        permissions = self.view.get_permissions()
        has_body = "requestBody" in operation
        has_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
        codes = []
        if has_body or has_query:
            codes.append(400)
        if authenticators:  # a wrong token is refused even where anonymous callers are allowed
            codes.append(401)
        role_checked = any(not isinstance(p, (AllowAny, IsAuthenticated)) for p in permissions)
        csrf_checked = self.method in UNSAFE_METHODS and any(
            isinstance(a, SessionAuthentication) for a in authenticators
        )
        if role_checked or csrf_checked:
            codes.append(403)
        if "{" in self.path:
            codes.append(404)
        if has_body:
            codes += [413, 415]
        if self.view.get_throttles():
            codes.append(429)
        return codes
