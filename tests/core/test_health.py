"""/healthz: every dependency checked for real; 503 naming the check that failed; details for admins only."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.test import override_settings

from apps.core import health

pytestmark = pytest.mark.django_db

CHECKS = {"database", "cache", "broker", "channel_layer"}


def _expected_details() -> dict[str, str]:
    redis = bool(settings.REDIS_URL)
    return {
        "database": "postgresql" if "postgresql" in settings.DATABASES["default"]["ENGINE"] else "sqlite",
        "cache": "RedisCache" if redis else "LocMemCache",
        "broker": settings.CELERY_BROKER_URL.split("://", 1)[0],
        "channel_layer": "RedisChannelLayer" if redis else "InMemoryChannelLayer",
    }


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("admin"))
    return client


def test_all_checks_ok(admin_client):
    response = admin_client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == CHECKS
    for name, check in body["checks"].items():
        assert check["ok"] is True, name
    assert {name: check["detail"] for name, check in body["checks"].items()} == _expected_details()


def test_healthz_is_public_and_not_cached(client):
    response = client.get("/healthz")

    assert response.status_code == 200  # anonymous
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


@pytest.mark.parametrize("role", [None, "analyst", "agent", "merchandiser"])
def test_non_admins_see_only_the_status_and_ok_flags(client, make_user, role):
    if role:
        client.force_login(make_user(role))

    response = client.get("/healthz")

    assert response.json() == {"status": "ok", "checks": {name: {"ok": True} for name in CHECKS}}


def test_an_admin_api_token_also_sees_the_details(api_client, make_user):
    make_user("admin", username="ops")
    token = api_client.post("/api/auth/token/", {"username": "ops", "password": "pw-for-tests-123"}).json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    body = api_client.get("/healthz").json()

    assert body["checks"]["database"]["detail"] == _expected_details()["database"]


def test_healthz_is_not_throttled(client):
    # Load balancers probe every few seconds from one address: far more than the anonymous API rate.
    for _ in range(70):
        assert client.get("/healthz").status_code == 200


def test_healthz_only_answers_get(client):
    assert client.post("/healthz").status_code == 405


BROKER_ERROR = "broker at redis://trellis:s3cret@10.0.0.7:6379 is down"


def _break_broker(monkeypatch) -> None:
    def broken_broker() -> str:
        raise ConnectionError(BROKER_ERROR)

    monkeypatch.setitem(health.CHECKS, "broker", broken_broker)


def test_a_failing_check_gives_503_and_names_it(admin_client, monkeypatch):
    _break_broker(monkeypatch)

    response = admin_client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["detail"] == f"ConnectionError: {BROKER_ERROR}"
    assert all(body["checks"][name]["ok"] for name in CHECKS - {"broker"})


def test_anonymous_503_names_the_check_but_not_the_error(client, monkeypatch, caplog):
    _break_broker(monkeypatch)

    with caplog.at_level(logging.WARNING, logger="apps.core.health"):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "degraded",
        "checks": {name: {"ok": name != "broker"} for name in CHECKS},
    }
    assert "s3cret" not in response.content.decode()
    # The operator finds the cause in the server log instead.
    logged = [r for r in caplog.records if r.name == "apps.core.health"]
    assert [r.getMessage() for r in logged] == ["health check broker failed"]
    assert "10.0.0.7" in str(logged[0].exc_info[1])


def test_an_unreachable_cache_really_fails_its_check(admin_client):
    # Port 9 (discard) has no Redis: the real cache check must notice, not only a monkeypatch.
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 1},
        }
    }
    with override_settings(CACHES=unreachable):
        response = admin_client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True
