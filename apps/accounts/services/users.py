from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import transaction

from apps.accounts.models import User
from apps.accounts.roles import Role


def roles_ensure() -> list[Group]:
    """Creates the role groups if missing (idempotent)."""
    return [Group.objects.get_or_create(name=role.value)[0] for role in Role]


@transaction.atomic
def user_create(*, username: str, password: str, roles: list[str], email: str = "") -> User:
    """Creates a user holding ``roles``; unknown role names are refused."""
    unknown = set(roles) - {r.value for r in Role}
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    user = User.objects.create_user(username=username, password=password, email=email)
    user.groups.set(Group.objects.filter(name__in=roles))
    if Role.ADMIN.value in roles:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return user
