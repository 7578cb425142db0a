"""`manage.py create_demo_users`: one user per role, safe to run again."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from apps.accounts.models import User
from apps.accounts.roles import Role, user_roles

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("create_demo_users", *args, stdout=out)
    return out.getvalue()


def _non_admin_demo_user_holds_other_roles() -> bool:
    return any(user_roles(User.objects.get(username=r.value)) != {r.value} for r in Role if r != Role.ADMIN)


def test_creates_one_user_per_role_holding_that_role():
    output = _run()

    for role in Role:
        user = User.objects.get(username=role.value)
        assert role.value in user_roles(user)
        assert authenticate(username=role.value, password="trellis-demo") == user
        assert role.value in output
    assert not _non_admin_demo_user_holds_other_roles()


def test_is_idempotent_and_resets_the_password():
    _run()
    ids = dict(User.objects.values_list("username", "id"))

    _run("--password", "another-pass-456")

    assert dict(User.objects.values_list("username", "id")) == ids
    assert User.objects.count() == len(Role)
    assert authenticate(username="analyst", password="another-pass-456") is not None
    assert authenticate(username="analyst", password="trellis-demo") is None
