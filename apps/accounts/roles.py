"""Roles, as Django groups, and the one check every entry point shares.

Pages (``role_required``), DRF (``permissions.HasRole``) and WebSocket consumers
(``user_has_role`` on ``scope["user"]``) all call ``user_has_role``, so a role means the
same thing everywhere. Superusers and members of ``admin`` pass every role check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


class Role(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    ANALYST = "analyst"
    MERCHANDISER = "merchandiser"


ROLE_DESCRIPTIONS = {
    Role.ADMIN: "everything, including promoting models and managing users",
    Role.AGENT: "customer-service agents: chat console, knowledge base",
    Role.ANALYST: "financial analysts: sentiment dashboard, alerts",
    Role.MERCHANDISER: "merchandisers: catalogue, recommendations",
}


def user_roles(user: Any) -> set[str]:
    """Role names of ``user`` (cached on the user object for the request)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return set()
    cached = getattr(user, "_trellis_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True)) & {r.value for r in Role}
        if user.is_superuser:
            cached.add(Role.ADMIN.value)
        user._trellis_roles = cached
    return cached


def user_has_role(user: Any, roles: Iterable[str]) -> bool:
    """True if ``user`` is authenticated and holds one of ``roles`` (admins hold all)."""
    held = user_roles(user)
    return Role.ADMIN.value in held or bool(held & {str(r) for r in roles})


def role_required(*roles: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """View decorator: anonymous -> login redirect; authenticated without role -> 403."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if roles and not user_has_role(request.user, roles):
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
