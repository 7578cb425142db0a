"""Who may see and change what in the model dashboard.

Everyone with a role sees model pages of the roles their app uses; training on a role's
data is for that app's people and admins; promotion and rollback are admin-only.
"""

from __future__ import annotations

from typing import Any

from apps.accounts.roles import Role, user_has_role, user_roles
from apps.mlops.models import ModelRole

# model role -> user roles that own it (besides admin)
ROLE_OWNERS: dict[str, tuple[str, ...]] = {
    ModelRole.EMBEDDER: (Role.AGENT, Role.ANALYST, Role.MERCHANDISER),
    ModelRole.CHAT_LM: (Role.AGENT,),
    ModelRole.INTENT: (Role.AGENT,),
    ModelRole.SENTIMENT: (Role.ANALYST,),
    ModelRole.NER: (Role.ANALYST,),
}


def visible_roles(user: Any) -> list[str]:
    """Model roles ``user`` may see (all for admins)."""
    if not user_roles(user):
        return []
    return [role for role, owners in ROLE_OWNERS.items() if user_has_role(user, owners)]


def can_view_role(user: Any, role: str) -> bool:
    return role in visible_roles(user)


def can_train_role(user: Any, role: str) -> bool:
    """Uploading datasets and starting/cancelling jobs for ``role``."""
    return user_has_role(user, ROLE_OWNERS.get(role, ()))


def can_promote(user: Any) -> bool:
    """Promotion, rollback and forced promotion past the evaluation gate."""
    return user_has_role(user, (Role.ADMIN,))


def can_see_traceback(user: Any) -> bool:
    """A failed job's traceback names server paths and code: admins only (others see one line)."""
    return user_has_role(user, (Role.ADMIN,))
