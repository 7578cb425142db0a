"""Django's middleware, with hooks that need no database run on the event loop.

Under ASGI, ``MiddlewareMixin.__acall__`` runs every ``process_request`` and
``process_response`` in a worker thread (``sync_to_async``), whether or not it does I/O:
with nine middleware that is about twenty thread hops per request, each a new thread per
request context, and it was most of the server's CPU per ``/v1/embeddings`` request
(bench/bench_serving.py, profiled with py-spy). The hooks of these classes only read the
request and set headers, so here they run inline. The two that may write to the database
(the session store, messages kept in the session) still hop to a thread, only when they
have something to save.

Each class behaves as its Django parent for synchronous callers (``__call__`` is theirs).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from csp.middleware import CSPMiddleware as _CSPMiddleware
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware as _XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware as _CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware as _CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware as _SecurityMiddleware


class InlineHooks:
    """``__acall__`` that calls ``process_request`` / ``process_response`` on the event loop.

    ``response_needs_thread`` says when ``process_response`` must run in a worker thread
    after all (it would touch the database).
    """

    get_response: Any

    def response_needs_thread(self, request: HttpRequest) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        process_request = getattr(self, "process_request", None)
        if process_request is not None:
            response = process_request(request)
        response = response or await self.get_response(request)
        process_response = getattr(self, "process_response", None)
        if process_response is not None:
            if self.response_needs_thread(request):
                response = await sync_to_async(process_response, thread_sensitive=True)(request, response)
            else:
                response = process_response(request, response)
        return response


class SecurityMiddleware(InlineHooks, _SecurityMiddleware):
    """Django's, inline: HTTPS redirect and security headers only."""


class CSPMiddleware(InlineHooks, _CSPMiddleware):
    """django-csp's, inline: builds the Content-Security-Policy header."""


class CommonMiddleware(InlineHooks, _CommonMiddleware):
    """Django's, inline: disallowed user agents, APPEND_SLASH (URL resolution only)."""


class AuthenticationMiddleware(InlineHooks, _AuthenticationMiddleware):
    """Django's, inline: ``request.user`` stays lazy (loaded when a view reads it)."""


class XFrameOptionsMiddleware(InlineHooks, _XFrameOptionsMiddleware):
    """Django's, inline: one header."""


class SessionMiddleware(InlineHooks, _SessionMiddleware):
    """Django's: the session is loaded lazily; saving it (a database write) runs in a thread."""

    def response_needs_thread(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class MessageMiddleware(InlineHooks, _MessageMiddleware):
    """Django's: storing messages (possibly into the session) runs in a thread."""

    def response_needs_thread(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class CsrfViewMiddleware(InlineHooks, _CsrfViewMiddleware):
    """Django's, inline while the CSRF secret lives in a cookie (``CSRF_USE_SESSIONS`` off);
    with the secret in the session every hook runs in a thread, as Django's."""

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if settings.CSRF_USE_SESSIONS:
            return await _CsrfViewMiddleware.__acall__(self, request)
        return await super().__acall__(request)

    async def process_view(self, request: HttpRequest, callback: Any, callback_args: Any,
                           callback_kwargs: Any) -> HttpResponseBase | None:
        """A coroutine, so the handler awaits it instead of hopping to a thread."""
        if settings.CSRF_USE_SESSIONS:
            return await sync_to_async(super().process_view, thread_sensitive=True)(
                request, callback, callback_args, callback_kwargs)
        return super().process_view(request, callback, callback_args, callback_kwargs)


# Django's deploy checks security.W001-W003 look for its own class paths in MIDDLEWARE;
# settings silence them and this check asks the same by class, subclasses included.
REQUIRED_MIDDLEWARE = {
    "security.W001": _SecurityMiddleware,
    "security.W002": _XFrameOptionsMiddleware,
    "security.W003": _CsrfViewMiddleware,
}


def middleware_security_check(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Warns, as Django's own deploy checks would, when a security middleware is missing."""
    from django.core.checks import Warning as CheckWarning
    from django.utils.module_loading import import_string

    loaded = [import_string(path) for path in settings.MIDDLEWARE]
    return [
        CheckWarning(f"No subclass of {required.__module__}.{required.__name__} in MIDDLEWARE.",
                     id=f"trellis.{check_id}")
        for check_id, required in REQUIRED_MIDDLEWARE.items()
        if not any(isinstance(cls, type) and issubclass(cls, required) for cls in loaded)
    ]
