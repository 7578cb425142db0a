"""DRF permission classes built on ``apps.accounts.roles``."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from apps.accounts.roles import Role, user_has_role


class HasRole(BasePermission):
    """Authenticated and holding one of ``roles`` (401 when anonymous, 403 otherwise).

    Use ``HasRole.of("analyst")`` in ``permission_classes``.
    """

    roles: tuple[str, ...] = ()
    message = "Your role does not allow this action."

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated) and user_has_role(
            request.user, self.roles
        )

    @classmethod
    def of(cls, *roles: str) -> type[HasRole]:
        return type(f"HasRole_{'_'.join(roles)}", (cls,), {"roles": tuple(roles)})


IsAdminRole = HasRole.of(Role.ADMIN)
