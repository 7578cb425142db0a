from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.accounts.roles import user_roles


def roles(request: HttpRequest) -> dict[str, Any]:
    """``user_roles`` in every template, for navigation that shows what a role may open."""
    return {"user_roles": user_roles(getattr(request, "user", None))}
