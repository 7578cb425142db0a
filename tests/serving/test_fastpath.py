"""``POST /v1/embeddings`` ahead of Django's stack (apps.serving.fastpath): which requests it
answers, that its answers equal Django's, and that everything else still reaches Django whole."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.core.cache import caches
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from apps.accounts.services.tokens import token_create, token_revoke
from apps.mlops.services import serving as mlops_serving
from apps.serving import fastpath
from apps.serving.services.inference import COUNTERS
from apps.serving.throttling import ServingRateThrottle
from config.asgi import django_asgi_app

pytestmark = pytest.mark.django_db

BODY = {"input": "where is my parcel?", "model": "embedder"}


class CountingApp:
    """Django's ASGI app, counting the requests that reach it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        await django_asgi_app(scope, receive, send)


@pytest.fixture(autouse=True)
def _tokens_remembered_for_the_whole_test(settings):
    """A token stays remembered however slow a test's first request is (imports, first model
    use): its 5 s default would send a later request to Django on a loaded machine."""
    settings.TRELLIS_TOKEN_CACHE_S = 3600


@pytest.fixture
def django_app():
    """Django's app, its requests leaving the test's database connection open (as its test
    client does: the test runs in a transaction on it)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield CountingApp()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def app(django_app):
    return fastpath.EmbeddingsFastPath(django_app)


@pytest.fixture
def ready(fake_models, monkeypatch):
    """The embedder serving and in memory, as after a request through Django (the fake)."""
    state = {"ready": ("embedder-default", fake_models["embedder"])}
    monkeypatch.setattr(fastpath, "serving_ready", lambda role: state["ready"])
    return state


def post(app, body, *, key: str | None = None, headers: dict[str, str] | None = None, path: str = "/v1/embeddings"):
    """One request through ``app``; ``body`` as bytes, a JSON-able object, or a list of chunks."""
    chunks = body if isinstance(body, list) else [body if isinstance(body, bytes) else json.dumps(body).encode()]
    sent = {**({"authorization": f"Bearer {key}"} if key else {}), "content-type": "application/json",
            "content-length": str(sum(map(len, chunks))), **(headers or {})}

    async def run():
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"testserver"), *((k.encode(), v.encode()) for k, v in sent.items())],
                 "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
        communicator = ApplicationCommunicator(app, scope)
        for n, chunk in enumerate(chunks):
            await communicator.send_input({"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1})
        start = await communicator.receive_output(10)
        content = b""
        while True:
            message = await communicator.receive_output(10)
            content += message.get("body", b"")
            if not message.get("more_body"):
                break
        await communicator.wait(10)
        return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, content

    return async_to_sync(run)()


def agent_key(make_user) -> str:
    return token_create(make_user("agent"))[1]


def test_a_remembered_token_is_answered_ahead_of_django_with_django_s_answer(app, django_app, ready, make_user):
    key = agent_key(make_user)

    first = post(app, BODY, key=key)  # knox checks the token: through Django
    assert django_app.calls == 1
    second = post(app, BODY, key=key)

    assert django_app.calls == 1, "the second request reached Django"
    assert first[0] == second[0] == 200
    assert second[2] == first[2]  # same bytes: vectors, model id, usage
    body = json.loads(second[2])
    assert body["model"] == "embedder-default" and len(body["data"]) == 1
    assert body["usage"]["prompt_tokens"] == 6  # the fake tokenizer: 4 words + 2 specials
    django_headers = {k: v for k, v in first[1].items() if k != "vary"}
    assert second[1] == django_headers  # security headers, CSP, X-Frame-Options, type, length


@pytest.mark.parametrize("body", [
    {"input": ["a parcel", "a refund please"], "model": "embedder", "encoding_format": "base64"},
    {"input": "a parcel", "model": " embedder-default ", "dimensions": 4, "user": "customer-7"},
    {"input": "a parcel", "model": "embedder", "dimensions": None, "unknown_field": [1, 2]},
])
def test_valid_variants_are_answered_ahead_of_django_as_django_would(app, django_app, ready, make_user, body):
    key = agent_key(make_user)
    post(app, BODY, key=key)

    fast = post(app, body, key=key)
    assert django_app.calls == 1
    slow = post(CountingApp(), body, key=key)  # Django alone

    assert fast[0] == slow[0] == 200
    assert json.loads(fast[2]) == json.loads(slow[2])


@pytest.mark.parametrize(("body", "status", "param"), [
    (b"{not json", 400, None),
    (b'{"input": "a", "model": "embedder", "x": NaN}', 400, None),
    ({"input": [], "model": "embedder"}, 400, "input"),
    ({"input": ["ok", ""], "model": "embedder"}, 400, "input"),
    ({"input": [[1, 2, 3]], "model": "embedder"}, 400, "input"),
    ({"input": "a", "model": "embedder", "dimensions": 3}, 400, "dimensions"),
    ({"input": "a", "model": "embedder", "dimensions": "4"}, 200, None),
    ({"input": "a", "model": "embedder", "encoding_format": None}, 400, "encoding_format"),
    ({"input": "a", "model": "embedder", "user": None}, 400, "user"),
    ({"input": "a", "model": "embedder", "user": "bad\x00name"}, 400, "user"),
    ({"input": "a"}, 400, "model"),
    ({"input": "a", "model": "chat-lm"}, 400, "model"),
    ({"input": "a", "model": "no-such-model"}, 404, "model"),
])
def test_anything_else_reaches_django_which_answers_it(app, django_app, ready, make_user, body, status, param):
    key = agent_key(make_user)
    post(app, BODY, key=key)

    code, _, content = post(app, body, key=key)

    assert django_app.calls == 2
    assert code == status, content
    if status != 200:
        error = json.loads(content)["error"]  # OpenAI's shape: the SDKs raise their usual errors
        assert error["param"] == param and error["message"]


def test_a_body_in_chunks_reaches_django_whole(app, django_app, ready, make_user):
    key = agent_key(make_user)
    raw = json.dumps({"input": ["one text", "and another one"], "model": "embedder"}).encode()

    code, _, content = post(app, [raw[:10], raw[10:25], raw[25:]], key=key)  # not remembered yet: Django

    assert django_app.calls == 1
    assert code == 200 and len(json.loads(content)["data"]) == 2
    code, _, content = post(app, [raw[:7], raw[7:]], key=key)  # remembered: answered here
    assert django_app.calls == 1
    assert code == 200 and len(json.loads(content)["data"]) == 2


@pytest.mark.parametrize("headers", [
    {"origin": "https://elsewhere.example"},  # a browser's cross-origin request: CORS is Django's
    {"authorization": "Token"},
    {"content-length": ""},  # Django reads no body without a length (chunked): it answers that too
])
def test_browser_origins_and_odd_headers_go_to_django(app, django_app, ready, make_user, headers):
    key = agent_key(make_user)
    post(app, BODY, key=key)

    post(app, BODY, key=key, headers=headers)

    assert django_app.calls == 2


def test_a_model_not_known_to_be_serving_and_loaded_goes_to_django(app, django_app, ready, make_user):
    key = agent_key(make_user)
    post(app, BODY, key=key)
    ready["ready"] = None  # the registry's last sync is too old, or the model is not in memory

    code, _, _ = post(app, BODY, key=key)

    assert django_app.calls == 2 and code == 200


def test_other_paths_and_methods_never_take_it(app, django_app, ready, make_user):
    key = agent_key(make_user)
    post(app, BODY, key=key)

    post(app, {"texts": ["a"], "role": "intent"}, key=key, path="/api/ml/classify/")

    assert django_app.calls == 2


def test_a_revoked_token_is_refused_at_once(app, django_app, ready, make_user):
    token, key = token_create(make_user("agent"))
    assert post(app, BODY, key=key)[0] == 200

    token_revoke(token)
    code, _, content = post(app, BODY, key=key)

    assert code == 401 and json.loads(content)["error"]["code"] == "invalid_api_key"


def test_a_role_without_the_embedder_is_refused_by_django(app, django_app, ready, make_user):
    user = make_user("agent")
    _, key = token_create(user)
    assert post(app, BODY, key=key)[0] == 200
    user.groups.clear()  # drops the remembered authentication too

    code, _, _ = post(app, BODY, key=key)

    assert code == 403 and django_app.calls == 2


def test_the_throttle_counts_each_request_once_on_either_path(app, django_app, ready, make_user, monkeypatch):
    caches["throttle"].clear()
    monkeypatch.setattr(ServingRateThrottle, "THROTTLE_RATES", {"serving_embeddings": "3/minute"})
    key = agent_key(make_user)

    codes = [post(app, BODY, key=key)[0] for _ in range(3)]
    refused = post(app, BODY, key=key)

    assert codes == [200, 200, 200]
    assert django_app.calls == 2  # the first (token check) and the refusal
    assert refused[0] == 429 and int(refused[1]["retry-after"]) > 0
    assert json.loads(refused[2])["error"]["type"] == "rate_limit_error"


def test_served_requests_are_counted_for_the_stats(app, ready, make_user):
    key = agent_key(make_user)
    post(app, BODY, key=key)
    before = COUNTERS["embeddings"].requests

    post(app, {"input": ["a b", "c"], "model": "embedder"}, key=key)

    assert COUNTERS["embeddings"].requests == before + 1


def test_the_registry_is_ready_only_after_a_sync_and_a_load(monkeypatch):
    synced: dict = {}
    monkeypatch.setattr(mlops_serving, "_synced", synced)

    assert mlops_serving.model_get_ready("embedder") is None  # never synced in this process
    model = mlops_serving.model_get("embedder")
    mlops_serving.registry_sync("embedder", force=True)  # (the first load may outlast a sync interval)
    version, ready_model = mlops_serving.model_get_ready("embedder")
    assert ready_model is model and version == "default"
    when, *rest = synced["embedder"]
    synced["embedder"] = (when - mlops_serving.SYNC_INTERVAL_S - 0.1, *rest)
    assert mlops_serving.model_get_ready("embedder") is None  # a promotion may have happened since


def test_the_project_s_asgi_app_takes_the_fast_path_inside_the_body_limit():
    from apps.core.middleware import AsgiBodySizeLimit
    from config.asgi import application

    http = application.application_mapping["http"]

    assert isinstance(http, AsgiBodySizeLimit) and isinstance(http.app, fastpath.EmbeddingsFastPath)
    assert http.app.app is django_asgi_app
