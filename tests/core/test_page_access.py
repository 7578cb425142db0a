"""Role-only pages: anonymous -> login redirect; signed in without the role -> 403."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_models_page_redirects_anonymous_to_login(client):
    response = client.get("/models/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/models/"


def test_models_page_is_forbidden_without_a_role(client, make_user):
    client.force_login(make_user())

    response = client.get("/models/")

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert "does not give access" in response.content.decode()


@pytest.mark.parametrize("role", ["analyst", "admin"])
def test_models_page_opens_for_a_role(client, make_user, role):
    client.force_login(make_user(role))

    assert client.get("/models/").status_code == 200


def test_dashboard_redirects_anonymous_to_login(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_admin_site_sends_anonymous_to_its_login(client):
    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("role", ["agent", "analyst", "merchandiser"])
def test_admin_site_refuses_non_admin_roles(client, make_user, role):
    client.force_login(make_user(role))

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_admin_site_opens_for_admins(client, make_user):
    client.force_login(make_user("admin"))

    response = client.get("/admin/")

    assert response.status_code == 200
    assert "Site administration" in response.content.decode()
