"""Rate limits, counted in the shared ``throttle`` cache and keyed on an address nobody can forge.

DRF's throttles count in the ``default`` cache, which is per-process memory on the embedded
default: a second server (or a restart) would hand out fresh attempts. These count in the
``throttle`` cache (Redis, or a database table every process shares). Client addresses come
from ``REMOTE_ADDR``, or from ``X-Forwarded-For`` only as far as ``TRELLIS_NUM_PROXIES``
trusted proxies wrote it (``REST_FRAMEWORK["NUM_PROXIES"]``), for DRF and django-axes alike.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.http import HttpRequest
from rest_framework import throttling


def client_ip(request: HttpRequest) -> str:
    """The client's address as every limit sees it (also ``AXES_CLIENT_IP_CALLABLE``)."""
    return throttling.BaseThrottle().get_ident(request) or ""


class SharedCacheMixin:
    @property
    def cache(self) -> BaseCache:
        return caches["throttle"]


class AnonRateThrottle(SharedCacheMixin, throttling.AnonRateThrottle):
    """Per address, for anonymous requests (``TRELLIS_THROTTLE_ANON``)."""


class UserRateThrottle(SharedCacheMixin, throttling.UserRateThrottle):
    """Per user, for signed-in requests (``TRELLIS_THROTTLE_USER``)."""


def _posted_username(request: Any) -> str:
    data = getattr(request, "data", None)
    if data is None:  # a plain Django request (the login page)
        data = request.POST
    value = data.get("username") if hasattr(data, "get") else None
    return value if isinstance(value, str) else ""


class LoginUsernameThrottle(SharedCacheMixin, throttling.SimpleRateThrottle):
    """Login attempts per username, from any address (``TRELLIS_THROTTLE_LOGIN_USERNAME``).

    The per-address limit and the lockout (django-axes, per username + address) stop one
    client; this one bounds guesses at one account spread over many addresses.
    """

    scope = "login_username"

    def get_rate(self) -> str:
        # A setting of its own, read per request (DRF copies its rate table once, at import).
        return settings.TRELLIS_THROTTLE_LOGIN_USERNAME

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        username = _posted_username(request).strip().casefold()
        if not username:
            return None  # nothing to guess at; validation refuses the request
        digest = hashlib.sha256(username.encode()).hexdigest()[:32]  # no usernames in cache keys
        return self.cache_format % {"scope": self.scope, "ident": digest}


def login_throttle_wait(request: HttpRequest) -> float | None:
    """Seconds to wait before this login attempt is allowed, or ``None`` when it is allowed now.

    For the HTML login page, which is not a DRF view: the same per-address and per-username
    limits as the token API, in the same cache.
    """
    waits = []
    for throttle in (AnonRateThrottle(), LoginUsernameThrottle()):
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait() or 1.0)
    return max(waits) if waits else None
