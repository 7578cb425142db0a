"""apps.core.async_middleware: Django's middleware without a thread hop per hook under ASGI,
and without losing what the hooks that write (sessions, messages) must save."""

from __future__ import annotations

import asgiref.sync
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import AsyncClient, override_settings

from apps.core.async_middleware import middleware_security_check

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-for-tests-123"


@pytest.fixture
def hops(monkeypatch):
    """Counts every ``sync_to_async`` call (a hop to a worker thread) while a test runs."""
    calls: list[str] = []
    original = asgiref.sync.SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(asgiref.sync.SyncToAsync, "__call__", counting)
    return calls


def test_an_async_view_costs_a_few_hops_not_one_per_middleware_hook(hops):
    response = async_to_sync(AsyncClient().post)("/v1/embeddings", {}, content_type="application/json")

    assert response.status_code == 401
    # The request_started signal, the view's one hop for authentication, logging the 4xx,
    # closing the response; Django's MiddlewareMixin would add two per middleware (18 more).
    assert len(hops) <= 6, hops
    assert not [name for name in hops if "process_request" in name or "process_response" in name]


def test_security_headers_are_still_set_under_asgi():
    response = async_to_sync(AsyncClient().get)("/accounts/login/")

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "default-src" in response["Content-Security-Policy"]
    assert "csrftoken" in response.cookies


def test_login_under_asgi_saves_the_session_and_csrf_is_enforced(make_user):
    user = make_user("analyst")
    async_to_sync(_login_under_asgi)(user)


async def _login_under_asgi(user) -> None:
    client = AsyncClient(enforce_csrf_checks=True)
    page = await client.get("/accounts/login/")
    token = page.cookies["csrftoken"].value

    refused = await client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    signed_in = await client.post("/accounts/login/", {"username": user.username, "password": PASSWORD,
                                                       "csrfmiddlewaretoken": token})

    assert refused.status_code == 403
    assert signed_in.status_code == 302
    session_key = signed_in.cookies["sessionid"].value
    assert await Session.objects.filter(session_key=session_key).aexists()
    dashboard = await client.get("/")
    assert f"Welcome, {user.username}" in dashboard.content.decode()


def test_deploy_check_asks_for_the_security_middleware_by_class():
    assert middleware_security_check() == []
    without = [m for m in settings.MIDDLEWARE if "Security" not in m]
    with override_settings(MIDDLEWARE=without):
        warnings = middleware_security_check()
    assert [w.id for w in warnings] == ["trellis.security.W001"]
