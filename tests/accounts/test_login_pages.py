"""Login and logout pages (session auth for the dashboard)."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


def test_login_page_renders_the_form(client):
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert "csrfmiddlewaretoken" in html


def test_good_login_redirects_to_the_dashboard_and_signs_in(client, make_user):
    user = make_user("analyst")

    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert f"Welcome, {user.username}" in dashboard.content.decode()


def test_login_follows_next(client, make_user):
    user = make_user("analyst")

    response = client.post(
        "/accounts/login/?next=/models/", {"username": user.username, "password": PASSWORD, "next": "/models/"}
    )

    assert response["Location"] == "/models/"


def test_bad_login_shows_an_error_and_signs_nobody_in(client, make_user):
    user = make_user("analyst")

    response = client.post("/accounts/login/", {"username": user.username, "password": "nope"})

    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    assert client.get("/").status_code == 302


def test_login_form_enforces_csrf(make_user):
    user = make_user("analyst")
    client = Client(enforce_csrf_checks=True)

    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})

    assert response.status_code == 403


def test_logout_signs_out_and_redirects_to_login(client, make_user):
    client.force_login(make_user("agent"))
    assert client.get("/").status_code == 200

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    home = client.get("/")
    assert home.status_code == 302
    assert home["Location"].startswith("/accounts/login/")


def test_dashboard_shows_admin_link_only_to_admins(client, make_user):
    client.force_login(make_user("analyst"))
    analyst_page = client.get("/").content.decode()
    client.force_login(make_user("admin"))
    admin_page = client.get("/").content.decode()

    assert 'href="/models/"' in analyst_page
    assert 'href="/admin/"' not in analyst_page
    assert 'href="/admin/"' in admin_page
