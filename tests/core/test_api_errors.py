"""Every API error has one shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import json

import pytest
from django.test import RequestFactory
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from apps.accounts.permissions import HasRole
from apps.core.errors import handler500

pytestmark = pytest.mark.django_db


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_unknown_api_route_is_404_json(client):
    response = client.get("/api/no-such-thing/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    error = _error(response)
    assert error["code"] == "not_found"
    assert "/api/no-such-thing/" in error["message"]


def test_unknown_page_is_an_html_404(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "Page not found" in response.content.decode()


def test_malformed_json_is_400_and_names_the_problem(api_client):
    response = api_client.post("/api/auth/token/", data='{"username": "a", ', content_type="application/json")

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "parse_error"
    assert "JSON parse error" in error["message"]


def test_validation_error_is_400_with_field_details(api_client):
    response = api_client.post("/api/auth/token/", {"username": ""}, format="json")

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid"
    assert error["message"].startswith("username: ")
    assert set(error["details"]) == {"username", "password"}


def test_anonymous_on_me_is_401(api_client):
    response = api_client.get("/api/auth/me/")

    assert response.status_code == 401
    assert _error(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Token")


def test_wrong_method_is_405(api_client):
    response = api_client.get("/api/auth/token/")

    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"


def test_role_refusal_in_the_api_is_403(make_user):
    class AdminsOnlyApi(APIView):
        permission_classes = (HasRole.of("admin"),)

        def get(self, request):  # pragma: no cover - never reached
            raise AssertionError

    request = APIRequestFactory().get("/api/admins-only/")
    from rest_framework.test import force_authenticate

    force_authenticate(request, user=make_user("analyst"))
    response = AdminsOnlyApi.as_view()(request)
    response.render()

    assert response.status_code == 403
    error = json.loads(response.content)["error"]
    assert error["code"] == "permission_denied"
    assert error["message"] == "Your role does not allow this action."


def test_server_error_handler_answers_json_for_the_api():
    response = handler500(RequestFactory().get("/api/anything/"))

    assert response.status_code == 500
    assert json.loads(response.content)["error"]["code"] == "server_error"


@pytest.fixture
def tiny_throttle(monkeypatch):
    # DRF copies DEFAULT_THROTTLE_RATES onto the class at import: override_settings cannot reach it.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "2/minute", "user": "2/minute"})


@pytest.mark.usefixtures("tiny_throttle")
def test_anonymous_over_the_rate_gets_429(api_client):
    statuses = [
        api_client.post("/api/auth/token/", {"username": "a", "password": "b"}, format="json").status_code
        for _ in range(3)
    ]

    assert statuses[:2] == [400, 400]
    assert statuses[2] == 429


@pytest.mark.usefixtures("tiny_throttle")
def test_user_over_the_rate_gets_429_with_retry_after(api_client, make_user):
    api_client.force_authenticate(make_user("analyst"))

    for _ in range(2):
        assert api_client.get("/api/auth/me/").status_code == 200
    response = api_client.get("/api/auth/me/")

    assert response.status_code == 429
    error = _error(response)
    assert error["code"] == "throttled"
    assert 0 < error["details"]["retry_after_seconds"] <= 60
    assert int(response["Retry-After"]) > 0


def test_500_page_still_renders_when_the_session_cannot_be_read():
    # given a page request whose session lookup fails (the database is down)
    class BrokenSession:
        def __getattr__(self, name):
            raise RuntimeError("database unavailable")

    request = RequestFactory().get("/models/")
    request.session = BrokenSession()

    class BrokenUser:
        @property
        def is_authenticated(self):
            raise RuntimeError("database unavailable")

    request.user = BrokenUser()
    # when the 500 handler runs
    response = handler500(request)
    # then the plain page is sent instead of a second error
    assert response.status_code == 500
    assert b"Something went wrong." in response.content
