"""Body limits in the ASGI layer: refused by Content-Length before the app runs, counted as they arrive."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.test import override_settings
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from apps.core.middleware import AsgiBodySizeLimit
from tests.core.ws import TIMEOUT, run

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024
# Requests that reach a view run on another thread (Django's ASGI handler gives each request its
# own): committed rows, so the view's writes (throttle counters) do not wait on the test's transaction.
reaches_django = pytest.mark.django_db(transaction=True)


def _scope(headers: list[tuple[bytes, bytes]], path: str = "/api/auth/token/", kind: str = "http") -> dict[str, Any]:
    return {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


def _json_headers(length: int | str | None = None, content_type: bytes = b"application/json") -> list:
    headers = [(b"content-type", content_type)]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return headers


def _post(chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, dict, dict]:
    """``chunks`` through the project's ASGI application -> (status, JSON body, response headers)."""
    from config.asgi import application

    outcome = {}

    async def scenario():
        app = ApplicationCommunicator(application, _scope(headers))
        for i, chunk in enumerate(chunks):
            await app.send_input({"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1})
        start = await app.receive_output(TIMEOUT)
        body = await app.receive_output(TIMEOUT)
        outcome.update(status=start["status"], body=json.loads(body["body"]), headers=dict(start["headers"]))
        await app.wait(TIMEOUT)

    run(scenario)
    return outcome["status"], outcome["body"], outcome["headers"]


class Spy:
    """An ASGI app that records whether it was called, and a ``receive`` that records awaits."""

    def __init__(self) -> None:
        self.app_calls = 0
        self.receive_calls = 0
        self.sent: list[dict[str, Any]] = []

    async def app(self, scope, receive, send) -> None:
        self.app_calls += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.sent[1]["body"])


def _call_wrapped(spy: Spy, scope: dict[str, Any], app: Any = None) -> None:
    async def scenario():
        await (app or AsgiBodySizeLimit(spy.app))(scope, spy.receive, spy.send)

    run(scenario)


# --- Content-Length: refused before the app runs


def test_a_60_mib_content_length_is_refused_before_the_app_runs():
    spy = Spy()

    _call_wrapped(spy, _scope(_json_headers(60 * MIB), path="/accounts/login/"))

    assert spy.status == 413
    assert spy.app_calls == 0
    assert spy.receive_calls == 0  # not one byte of the body was asked for
    limit = 1 * MIB
    assert spy.body["error"] == {
        "code": "payload_too_large",
        "message": f"Request body is {60 * MIB} bytes; the limit is {limit} bytes.",
        "details": {"limit_bytes": limit},
    }
    assert (b"connection", b"close") in spy.sent[0]["headers"]  # the server stops reading the socket


def test_on_the_openai_compatible_api_the_refusal_is_in_openais_error_shape():
    spy = Spy()

    _call_wrapped(spy, _scope(_json_headers(60 * MIB), path="/v1/embeddings"))

    assert spy.status == 413
    assert spy.app_calls == 0
    assert spy.body == {"error": {"message": f"Request body is {60 * MIB} bytes; the limit is {MIB} bytes.",
                                  "type": "invalid_request_error", "param": None, "code": "payload_too_large"}}


def test_the_project_application_refuses_it_without_receiving_the_body():
    from config.asgi import application

    spy = Spy()

    _call_wrapped(spy, _scope(_json_headers(60 * MIB), path="/accounts/login/"), app=application)

    assert spy.status == 413
    assert spy.receive_calls == 0
    assert spy.body["error"]["code"] == "payload_too_large"


@override_settings(TRELLIS_MAX_BODY_BYTES=64, TRELLIS_MAX_UPLOAD_BYTES=1000)
@pytest.mark.parametrize(
    ("content_type", "length", "allowed"),
    [
        (b"application/json", 64, True),
        (b"application/json", 65, False),
        (b"multipart/form-data; boundary=zz", 1000, True),
        (b"multipart/form-data; boundary=zz", 1001, False),
        (b"application/x-www-form-urlencoded", 65, False),
    ],
)
def test_the_limit_depends_on_the_content_type(content_type, length, allowed):
    spy = Spy()

    _call_wrapped(spy, _scope(_json_headers(length, content_type)))

    assert spy.app_calls == (1 if allowed else 0)
    if not allowed:
        assert spy.status == 413
        assert spy.body["error"]["details"] == {"limit_bytes": 1000 if b"multipart" in content_type else 64}


@pytest.mark.parametrize(
    "lengths",
    [[b"lots"], [b"-1"], [b"1e3"], [b" "], [b"10", b"11"], [b"10, 11"], [b"\xd9\xa3"]],
    ids=["word", "negative", "exponent", "blank", "two-headers-disagree", "list-disagrees", "arabic-digit"],
)
def test_a_malformed_content_length_is_400_before_the_app_runs(lengths):
    spy = Spy()

    _call_wrapped(spy, _scope([(b"content-type", b"application/json")] + [(b"content-length", v) for v in lengths]))

    assert spy.status == 400
    assert spy.body["error"]["code"] == "bad_request"
    assert spy.app_calls == 0 and spy.receive_calls == 0


def test_repeated_equal_content_lengths_are_one_length():
    spy = Spy()

    _call_wrapped(spy, _scope([(b"content-length", b"10"), (b"content-length", b"10, 10")]))

    assert spy.app_calls == 1


def test_websockets_pass_through_untouched():
    spy = Spy()

    _call_wrapped(spy, _scope(_json_headers(60 * MIB), kind="websocket"))

    assert spy.app_calls == 1


# --- the bytes themselves are counted, whatever the headers say


@reaches_django
@override_settings(TRELLIS_MAX_BODY_BYTES=64)
def test_a_body_under_the_limit_reaches_django():
    body = b'{"username": "x"}'

    status, response, _ = _post([body], _json_headers(len(body)))

    assert status == 400
    assert response["error"]["code"] == "invalid"  # reached the view: password missing


@reaches_django
@override_settings(TRELLIS_MAX_BODY_BYTES=1000)
def test_a_body_longer_than_its_content_length_is_cut_off():
    status, response, headers = _post([b'{"username": ', b'"u" ' * 20, b"}"], _json_headers(10))

    assert status == 400
    assert response["error"]["code"] == "bad_request"
    assert "longer than its Content-Length (10)" in response["error"]["message"]
    assert headers[b"connection"] == b"close"


@reaches_django
@override_settings(TRELLIS_MAX_BODY_BYTES=64)
def test_chunked_body_over_the_limit_is_413():
    status, body, _ = _post([b'{"username": "', b"u" * 50, b"u" * 50, b'", "password": "p"}'], _json_headers())

    assert status == 413
    assert body["error"] == {
        "code": "payload_too_large",
        "message": "Request body is over the limit of 64 bytes.",
        "details": {"limit_bytes": 64},
    }


@reaches_django
@override_settings(TRELLIS_MAX_BODY_BYTES=64, TRELLIS_MAX_UPLOAD_BYTES=10_000)
def test_a_multipart_upload_gets_the_larger_limit():
    body = encode_multipart(BOUNDARY, {"username": "x" * 100, "password": "y"})
    assert len(body) > 64

    status, response, _ = _post([body], _json_headers(len(body), MULTIPART_CONTENT.encode()))

    assert status == 400  # not 413: reached the view, wrong credentials
    assert response["error"]["code"] == "invalid_credentials"


@override_settings(TRELLIS_MAX_BODY_BYTES=64, TRELLIS_MAX_UPLOAD_BYTES=1000)
@pytest.mark.parametrize(("chunks", "status"), [([b"x" * 400] * 2, 200), ([b"x" * 400] * 3, 413)], ids=["800", "1200"])
def test_a_chunked_multipart_upload_gets_the_larger_limit(chunks, status):
    # Django parses no multipart body without a Content-Length, so an app that reads the raw body.
    last = len(chunks) - 1
    messages = iter([{"type": "http.request", "body": c, "more_body": i < last} for i, c in enumerate(chunks)])
    sent = []

    async def read_all(scope, receive, send):
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    async def scenario():
        scope = _scope(_json_headers(None, b"multipart/form-data; boundary=zz"))
        await AsgiBodySizeLimit(read_all)(scope, receive, send)

    run(scenario)

    assert sent[0]["status"] == status
    if status == 200:
        assert sent[1]["body"] == b"800"  # every byte reached the app, over the 64-byte body limit


@reaches_django
@override_settings(TRELLIS_MAX_BODY_BYTES=64)
def test_chunked_body_under_the_limit_reaches_django():
    status, body, _ = _post([b'{"username": ', b'"u"}'], _json_headers())

    assert status == 400
    assert body["error"]["code"] == "invalid"
