from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from apps.accounts.models import User
from apps.accounts.roles import Role


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


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


@transaction.atomic
def demo_users_ensure(password: str = "trellis-demo") -> list[DemoLogin]:
    """One demo user per role (``admin``, ``agent``, ...), password reset to ``password``."""
    roles_ensure()
    logins = []
    for role in Role:
        user = User.objects.filter(username=role.value).first()
        if user is None:
            user_create(username=role.value, password=password, roles=[role.value])
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        logins.append(DemoLogin(role.value, password, role.value))
    return logins


def token_for_user(user: User) -> Token:
    """The API token of ``user`` (created on first use)."""
    return Token.objects.get_or_create(user=user)[0]


def token_rotate(user: User) -> Token:
    """Replaces the API token of ``user``; the old one stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)
