"""Roles: admins pass every check, other roles only their own; pages, DRF and sockets share it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import RequestFactory

from apps.accounts.permissions import HasRole, IsAdminRole
from apps.accounts.roles import Role, role_required, user_has_role, user_roles
from apps.accounts.services import user_create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_admin_passes_every_role_check(make_user, role):
    admin = make_user("admin")

    assert user_has_role(admin, [role])


def test_superuser_without_groups_counts_as_admin(make_user):
    user = make_user()
    user.is_superuser = True
    user.save()

    assert user_roles(user) == {"admin"}
    assert user_has_role(user, ["merchandiser"])


@pytest.mark.parametrize(
    ("held", "asked", "expected"),
    [
        ("analyst", ["analyst"], True),
        ("analyst", ["agent"], False),
        ("agent", ["analyst", "merchandiser"], False),
        ("merchandiser", ["analyst", "merchandiser"], True),
    ],
)
def test_non_admin_passes_only_its_own_roles(make_user, held, asked, expected):
    user = make_user(held)

    assert user_has_role(user, asked) is expected


def test_user_without_roles_and_anonymous_fail_every_check(make_user):
    assert not user_has_role(make_user(), [r.value for r in Role])
    assert not user_has_role(AnonymousUser(), [r.value for r in Role])
    assert user_roles(None) == set()


def test_unknown_role_is_refused_at_creation():
    with pytest.raises(ValueError, match="unknown roles"):
        user_create(username="x", password="pw-for-tests-123", roles=["wizard"])


def test_admin_role_makes_staff_superuser(make_user):
    admin = make_user("admin")

    assert admin.is_staff and admin.is_superuser


class TestRoleRequiredDecorator:
    @staticmethod
    def _view(request):
        return HttpResponse("ok")

    def _call(self, user, *roles):
        request = RequestFactory().get("/somewhere/?x=1")
        request.user = user
        return role_required(*roles)(self._view)(request)

    def test_anonymous_is_redirected_to_login_with_next(self):
        response = self._call(AnonymousUser(), "analyst")

        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
        assert "next=/somewhere/%3Fx%3D1" in response["Location"]

    def test_wrong_role_is_forbidden(self, make_user):
        with pytest.raises(PermissionDenied):
            self._call(make_user("agent"), "analyst")

    def test_right_role_and_admin_get_the_page(self, make_user):
        assert self._call(make_user("analyst"), "analyst").content == b"ok"
        assert self._call(make_user("admin"), "analyst").content == b"ok"


class TestHasRolePermission:
    def _allowed(self, permission_class, user):
        request = RequestFactory().get("/api/x/")
        request.user = user
        return permission_class().has_permission(request, view=None)

    def test_of_builds_a_permission_for_those_roles(self, make_user):
        analysts = HasRole.of("analyst")

        assert self._allowed(analysts, make_user("analyst"))
        assert self._allowed(analysts, make_user("admin"))
        assert not self._allowed(analysts, make_user("merchandiser"))
        assert not self._allowed(analysts, AnonymousUser())

    def test_is_admin_role_refuses_other_roles(self, make_user):
        assert self._allowed(IsAdminRole, make_user("admin"))
        for role in ("agent", "analyst", "merchandiser"):
            assert not self._allowed(IsAdminRole, make_user(role))
