"""What the inference services raise when a request cannot be served.

Each carries the HTTP status and error code it answers with; the API layer renders it in
OpenAI's error shape on ``/v1/*`` and in the Trellis shape on ``/api/ml/*``.
"""

from __future__ import annotations


class ServingError(Exception):
    """A request that cannot be served, with why (``message``) and which field (``param``)."""

    http_status = 400
    code = "invalid_request"
    error_type = "invalid_request_error"  # OpenAI's ``error.type``

    def __init__(self, message: str, *, param: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s


class UnknownModel(ServingError):
    """No role or version has this id (or it is retired)."""

    http_status = 404
    code = "model_not_found"


class WrongModel(ServingError):
    """The model exists but does another job (an embedder asked to chat)."""

    code = "model_not_supported"


class ModelForbidden(ServingError):
    """The caller's roles do not include this model's role."""

    http_status = 403
    code = "permission_denied"
    error_type = "permission_error"


class InvalidInput(ServingError):
    """The request is well-formed JSON but asks for something this model cannot do."""

    code = "invalid_value"


class ContextTooLong(InvalidInput):
    code = "context_length_exceeded"


class ServerBusy(ServingError):
    """The chat model's queue is full; the client should retry after ``retry_after_s``."""

    http_status = 429
    code = "server_busy"
    error_type = "rate_limit_error"


class ModelUnavailable(ServingError):
    """The model of a role cannot be loaded in this process."""

    http_status = 503
    code = "model_unavailable"
    error_type = "server_error"


class GenerationFailed(ServingError):
    """The model raised while generating (a bug or an exhausted device, not bad input)."""

    http_status = 500
    code = "generation_failed"
    error_type = "server_error"
