"""/healthz: every dependency checked for real; 503 naming the check that failed."""

from __future__ import annotations

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


def test_all_checks_ok(client):
    response = client.get("/healthz")

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


def test_healthz_only_answers_get(client):
    assert client.post("/healthz").status_code == 405


def test_a_failing_check_gives_503_and_names_it(client, monkeypatch):
    def broken_broker() -> str:
        raise ConnectionError("broker is down")

    monkeypatch.setitem(health.CHECKS, "broker", broken_broker)

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["detail"] == "ConnectionError: broker is down"
    assert all(body["checks"][name]["ok"] for name in CHECKS - {"broker"})


def test_an_unreachable_cache_really_fails_its_check(client):
    # Port 9 (discard) has no Redis: the real cache check must notice, not only a monkeypatch.
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 1},
        }
    }
    with override_settings(CACHES=unreachable):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True
