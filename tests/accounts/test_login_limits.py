"""Password guessing: limits per address and per username, lockout per username + address
(django-axes), on the token API and the login page; X-Forwarded-For is not trusted unless
TRELLIS_NUM_PROXIES says a proxy wrote it; state lives where every process sees it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"
LIMIT = 5  # AXES_FAILURE_LIMIT (TRELLIS_LOGIN_FAILURE_LIMIT)


def _obtain(api_client, username, password, **extra):
    return api_client.post("/api/auth/token/", {"username": username, "password": password}, format="json", **extra)


def _login_page(client, username, password, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


@pytest.fixture
def tiny_anon_rate(monkeypatch):
    # DRF copies DEFAULT_THROTTLE_RATES onto the class at import: override_settings cannot reach it.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/minute", "user": "1000/minute"})


@pytest.fixture
def behind_one_proxy(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}


@pytest.mark.usefixtures("tiny_anon_rate")
def test_a_forged_x_forwarded_for_gives_no_fresh_attempts(api_client):
    statuses = [_obtain(api_client, f"user-{i}", "x", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
                for i in range(4)]

    assert statuses == [400, 400, 400, 429]


@pytest.mark.usefixtures("tiny_anon_rate", "behind_one_proxy")
def test_behind_a_proxy_each_forwarded_address_counts_on_its_own(api_client):
    statuses = [_obtain(api_client, f"user-{i}", "x", HTTP_X_FORWARDED_FOR=f"198.51.100.7, 203.0.113.{i}").status_code
                for i in range(4)]

    assert statuses == [400, 400, 400, 400]  # the proxy's last entry is the client: four clients


def test_one_username_is_limited_from_any_address(api_client, make_user, settings):
    settings.TRELLIS_THROTTLE_LOGIN_USERNAME = "3/hour"
    user = make_user("analyst")

    statuses = [_obtain(api_client, user.username, "wrong", REMOTE_ADDR=f"192.0.2.{i}").status_code for i in range(4)]
    other = _obtain(api_client, "someone-else", "wrong", REMOTE_ADDR="192.0.2.99")

    assert statuses == [400, 400, 400, 429]
    assert other.status_code == 400


def test_the_sixth_wrong_password_is_locked_out_whatever_x_forwarded_for_says(api_client, make_user):
    user = make_user("analyst")

    responses = [_obtain(api_client, user.username, f"guess-{i}", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
                 for i in range(LIMIT + 1)]

    assert [r.status_code for r in responses[: LIMIT - 1]] == [400] * (LIMIT - 1)
    for locked in responses[LIMIT - 1:]:
        assert locked.status_code == 429
        error = locked.json()["error"]
        assert error["code"] == "locked_out"
        assert 14 * 60 < error["details"]["retry_after_seconds"] <= 15 * 60
        assert 14 * 60 < int(locked["Retry-After"]) <= 15 * 60
    assert AccessAttempt.objects.get(username=user.username).ip_address == "127.0.0.1"


def test_the_right_password_is_refused_until_the_lock_ends(api_client, make_user):
    user = make_user("analyst")
    for i in range(LIMIT):
        _obtain(api_client, user.username, f"guess-{i}")

    during = _obtain(api_client, user.username, PASSWORD)
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    after = _obtain(api_client, user.username, PASSWORD)

    assert during.status_code == 429 and "token" not in during.json()
    assert after.status_code == 200 and after.json()["token"]


def test_the_lock_holds_one_username_from_one_address_only(api_client, make_user):
    user, neighbour = make_user("analyst"), make_user("analyst")
    for i in range(LIMIT):
        _obtain(api_client, user.username, f"guess-{i}")

    assert _obtain(api_client, user.username, PASSWORD, REMOTE_ADDR="192.0.2.50").status_code == 200
    assert _obtain(api_client, neighbour.username, PASSWORD).status_code == 200


def test_the_login_page_locks_out_and_says_so(client, make_user):
    user = make_user("analyst")

    statuses = [_login_page(client, user.username, f"guess-{i}").status_code for i in range(LIMIT - 1)]
    locked = _login_page(client, user.username, f"guess-{LIMIT}")
    right_password = _login_page(client, user.username, PASSWORD)

    assert statuses == [200] * (LIMIT - 1)  # the form again, with its error
    for response in (locked, right_password):
        assert response.status_code == 429
        assert "Too many failed logins" in response.content.decode()
        assert int(response["Retry-After"]) > 14 * 60
    assert client.get("/").status_code == 302  # nobody signed in


def test_the_login_page_and_the_api_share_one_lock(client, api_client, make_user):
    user = make_user("analyst")
    for i in range(LIMIT):
        _login_page(client, user.username, f"guess-{i}")

    assert _obtain(api_client, user.username, PASSWORD).json()["error"]["code"] == "locked_out"


def test_the_admin_login_is_locked_too(client, make_user):
    admin = make_user("admin")
    for i in range(LIMIT):
        client.post("/admin/login/", {"username": admin.username, "password": f"guess-{i}"})

    response = client.post("/admin/login/?next=/admin/", {"username": admin.username, "password": PASSWORD})

    assert response.status_code == 429


def test_the_login_page_limits_one_username(client, make_user, settings):
    settings.TRELLIS_THROTTLE_LOGIN_USERNAME = "2/hour"
    user = make_user("analyst")

    statuses = [_login_page(client, user.username, "wrong", REMOTE_ADDR=f"192.0.2.{i}").status_code for i in range(3)]
    right_password = _login_page(client, user.username, PASSWORD, REMOTE_ADDR="192.0.2.9")

    assert statuses == [200, 200, 429]
    assert right_password.status_code == 429
    assert "Too many login attempts" in right_password.content.decode()


def test_limits_are_kept_where_every_process_sees_them(api_client, make_user, settings):
    """Another server process reads the same cache and database: a fresh cache object built from
    the settings (as another process would) sees the counts, and lockouts are database rows."""
    settings.TRELLIS_THROTTLE_LOGIN_USERNAME = "1/hour"
    user = make_user("analyst")
    _obtain(api_client, user.username, "wrong")

    fresh = caches.create_connection("throttle")
    assert "LocMem" not in type(fresh).__name__
    assert len(fresh.get("throttle_anon_127.0.0.1")) == 1  # one request so far from this address
    assert _obtain(api_client, user.username, "wrong").status_code == 429  # seen through the same store
    assert AccessAttempt.objects.filter(username=user.username, failures_since_start=1).exists()
