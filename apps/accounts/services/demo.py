"""Demo users for a local try-out: one per role, with a published password.

They are only ever created on a development install that nobody else can reach: not in
production, and only when the suite listens on a loopback address. An existing user is
never touched, so a password someone changed stays changed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from apps.accounts.models import User
from apps.accounts.roles import Role
from apps.accounts.services.users import roles_ensure, user_create

DEMO_PASSWORD = "trellis-demo"  # noqa: S105 - published in README for local try-outs; never set in production
LOOPBACK_HOSTS = "127.0.0.1, ::1, localhost"


class DemoUsersRefused(Exception):
    """Demo users would be reachable by others (a public address, or production)."""


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    created: bool  # False: the user existed and keeps its password


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``, ``[::1]``)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


def demo_users_refusal(host: str) -> str | None:
    """Why demo users may not be created for a suite listening on ``host``; ``None`` if they may."""
    if settings.PRODUCTION:
        return "DJANGO_PRODUCTION is set: demo users, whose password is published, are never created in production."
    if not is_loopback_host(host):
        return (f"the suite listens on {host}, which other machines can reach: demo users, whose password is "
                f"published, are only created for a loopback host ({LOOPBACK_HOSTS}).")
    return None


@transaction.atomic
def demo_users_ensure(*, host: str, password: str = DEMO_PASSWORD) -> list[DemoLogin]:
    """One demo user per role (``admin``, ``agent``, ...); existing users are left as they are.

    Raises ``DemoUsersRefused`` in production or for a non-loopback ``host``.
    """
    refusal = demo_users_refusal(host)
    if refusal:
        raise DemoUsersRefused(refusal)
    roles_ensure()
    logins = []
    for role in Role:
        created = not User.objects.filter(username=role.value).exists()
        if created:
            user_create(username=role.value, password=password, roles=[role.value])
        logins.append(DemoLogin(role.value, role.value, created))
    return logins
