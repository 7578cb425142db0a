"""The inference API's hot path: remembered token checks, throttles decided in the process and
exchanged with the shared cache, and no thread per request under the project's ASGI app."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from asgiref.sync import SyncToAsync, ThreadSensitiveContext, async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.core.cache import caches
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts import token_cache
from apps.accounts.services.tokens import token_create, token_revoke
from apps.serving import throttling
from apps.serving.throttling import ServingRateThrottle

pytestmark = pytest.mark.django_db

EMBED = "/v1/embeddings"
BODY = {"input": "where is my parcel?", "model": "embedder"}


def embed(api_client, key: str):
    return api_client.post(EMBED, BODY, format="json", HTTP_AUTHORIZATION=f"Bearer {key}")


def token_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "accounts_apitoken" in q["sql"] or "auth_group" in q["sql"]]


@pytest.fixture
def clock(monkeypatch):
    """The token cache's and the throttle windows' monotonic clock, moved on by hand."""
    now = [1_000.0]
    monkeypatch.setattr(token_cache, "clock", lambda: now[0])
    monkeypatch.setattr(throttling, "clock", lambda: now[0])
    return now


@pytest.fixture
def rate(monkeypatch):
    def set_rate(value: str) -> None:
        caches["throttle"].clear()
        monkeypatch.setattr(ServingRateThrottle, "THROTTLE_RATES", {"serving_embeddings": value})

    return set_rate


def throttle_key(token) -> str:
    return f"throttle_serving_embeddings_token-{hashlib.sha256(str(token.pk).encode()).hexdigest()[:32]}"


# --- token checks --------------------------------------------------------------------------


def test_a_token_checked_once_is_not_looked_up_again(api_client, make_user, fake_models):
    _, key = token_create(make_user("agent"))
    assert embed(api_client, key).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        response = embed(api_client, key)

    assert response.status_code == 200, response.content
    assert token_queries(queries) == []


def test_a_remembered_token_costs_no_thread_hop_for_its_checks(make_user, fake_models, monkeypatch):
    _, key = token_create(make_user("agent"))
    client, headers = AsyncClient(), {"Authorization": f"Bearer {key}"}
    post = async_to_sync(client.post)
    assert post(EMBED, BODY, content_type="application/json", headers=headers).status_code == 200
    hops: list[str] = []
    hop = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await hop(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)

    response = post(EMBED, BODY, content_type="application/json", headers=headers)

    assert response.status_code == 200, response.content
    # Django's request_started and closing the response, and the view's validation + prepare:
    # neither the token check nor the throttle hops any more.
    assert len(hops) <= 3, hops
    assert not [name for name in hops if "initial" in name or "exchange" in name or "allow_request" in name]


def test_a_zero_ttl_checks_every_request(api_client, make_user, fake_models, settings):
    settings.TRELLIS_TOKEN_CACHE_S = 0
    _, key = token_create(make_user("agent"))
    assert embed(api_client, key).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        assert embed(api_client, key).status_code == 200

    assert token_queries(queries)


def test_revoking_a_remembered_token_refuses_it_at_once(api_client, make_user, fake_models):
    token, key = token_create(make_user("agent"))
    assert embed(api_client, key).status_code == 200

    token_revoke(token)

    assert embed(api_client, key).status_code == 401


@pytest.mark.parametrize("change", ["new password", "deactivation"])
def test_a_new_password_or_a_deactivation_refuses_remembered_tokens_at_once(api_client, make_user, fake_models, change):
    user = make_user("agent")
    _, key = token_create(user)
    assert embed(api_client, key).status_code == 200

    if change == "new password":
        user.set_password("another-pass-phrase-5521")
    else:
        user.is_active = False
    user.save()

    assert embed(api_client, key).status_code == 401


def test_a_role_taken_away_is_refused_at_once(api_client, make_user, fake_models):
    user = make_user("agent")
    _, key = token_create(user)
    assert embed(api_client, key).status_code == 200

    user.groups.clear()

    assert embed(api_client, key).status_code == 403


def test_a_token_deleted_by_another_process_stops_working_within_the_ttl(
    api_client, make_user, fake_models, clock, settings
):
    token, key = token_create(make_user("agent"))
    assert embed(api_client, key).status_code == 200
    with connection.cursor() as cursor:  # as another process would: no signal reaches this one
        cursor.execute("DELETE FROM accounts_apitoken WHERE id = %s", [token.pk])

    still = embed(api_client, key)
    clock[0] += settings.TRELLIS_TOKEN_CACHE_S
    later = embed(api_client, key)

    assert still.status_code == 200
    assert later.status_code == 401


def test_an_expired_token_is_refused_even_when_remembered(api_client, make_user, fake_models, monkeypatch):
    _, key = token_create(make_user("agent"), ttl=timedelta(hours=1))
    assert embed(api_client, key).status_code == 200
    later = timezone.now() + timedelta(hours=2)

    monkeypatch.setattr(timezone, "now", lambda: later)

    assert embed(api_client, key).status_code == 401


def test_a_check_that_raced_with_a_revocation_is_not_remembered(make_user):
    user = make_user("agent")
    token, key = token_create(user)
    generation = token_cache.token_cache_generation()  # a request starts checking the token

    token_revoke(token)  # meanwhile
    token_cache.token_cache_put(user, token, generation=generation)

    assert token_cache.token_cache_get(key) is None


# --- throttles -----------------------------------------------------------------------------


def test_a_caller_over_its_limit_in_another_process_is_refused_on_its_first_request(
    api_client, make_user, fake_models, rate
):
    rate("3/minute")
    token, key = token_create(make_user("agent"))
    caches["throttle"].set(throttle_key(token), [time.time()] * 3, 60)  # another process served three

    response = embed(api_client, key)

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_requests_are_exchanged_with_the_shared_cache_after_the_sync_interval(
    api_client, make_user, fake_models, rate, clock
):
    rate("5/minute")
    token, key = token_create(make_user("agent"))
    assert [embed(api_client, key).status_code for _ in range(2)] == [200, 200]
    caches["throttle"].set(throttle_key(token), [time.time()] * 2, 60)  # another process served two meanwhile

    clock[0] += throttling.SYNC_INTERVAL_S + 0.01
    statuses = [embed(api_client, key).status_code for _ in range(2)]

    assert statuses == [200, 429]  # 2 here + 2 there + 1 = the limit of 5
    assert len(caches["throttle"].get(throttle_key(token))) == 4  # this process's two were written


def test_concurrent_requests_of_one_caller_never_pass_the_limit(make_user, monkeypatch):
    caches["throttle"].clear()
    monkeypatch.setattr(ServingRateThrottle, "THROTTLE_RATES", {"serving_embeddings": "4/minute"})
    token, _ = token_create(make_user("agent"))
    request = SimpleNamespace(user=token.user, auth=token, META={})
    view = SimpleNamespace(throttle_scope="serving_embeddings")

    async def burst() -> list[bool]:
        return list(await asyncio.gather(*(ServingRateThrottle().aallow_request(request, view) for _ in range(10))))

    allowed = async_to_sync(burst)()

    assert allowed.count(True) == 4


# --- the ASGI application ------------------------------------------------------------------


def _asgi_call(method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    from config.asgi import application

    async def call() -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
        }
        app = ApplicationCommunicator(application, scope)
        await app.send_input({"type": "http.request", "body": body})
        start = await app.receive_output(timeout=30)
        content = b""
        while True:
            message = await app.receive_output(timeout=30)
            content += message.get("body", b"")
            if not message.get("more_body"):
                break
        await app.wait(timeout=30)
        return start["status"], content

    return async_to_sync(call)()


@pytest.mark.django_db(transaction=True)
def test_the_inference_api_runs_without_a_thread_per_request(monkeypatch):
    contexts: list[str] = []
    enter = ThreadSensitiveContext.__aenter__

    async def counting(self):
        contexts.append("entered")
        return await enter(self)

    monkeypatch.setattr(ThreadSensitiveContext, "__aenter__", counting)

    status, body = _asgi_call("POST", EMBED, json.dumps(BODY).encode())
    inference_contexts = len(contexts)
    models_status, _ = _asgi_call("GET", "/v1/models")  # a sync view: Django's thread per request

    assert status == 401
    assert json.loads(body)["error"]["code"] == "missing_api_key"  # the whole Django stack answered
    assert inference_contexts == 0
    assert models_status == 401
    assert contexts == ["entered"]
