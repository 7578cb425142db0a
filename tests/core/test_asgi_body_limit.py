"""Bodies sent without Content-Length (chunked) are capped as they arrive, over real ASGI."""

from __future__ import annotations

import json

import pytest
from asgiref.testing import ApplicationCommunicator
from django.test import override_settings

from tests.core.ws import TIMEOUT, run

pytestmark = pytest.mark.django_db


def _post(chunks: list[bytes], content_type: bytes = b"application/json") -> tuple[int, dict]:
    from config.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/auth/token/",
        "raw_path": b"/api/auth/token/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", content_type)],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    outcome = {}

    async def scenario():
        app = ApplicationCommunicator(application, scope)
        for i, chunk in enumerate(chunks):
            await app.send_input({"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1})
        start = await app.receive_output(TIMEOUT)
        body = await app.receive_output(TIMEOUT)
        outcome.update(status=start["status"], body=json.loads(body["body"]))
        await app.wait(TIMEOUT)

    run(scenario)
    return outcome["status"], outcome["body"]


@override_settings(TRELLIS_MAX_BODY_BYTES=64)
def test_chunked_body_over_the_limit_is_413():
    status, body = _post([b'{"username": "', b"u" * 50, b"u" * 50, b'", "password": "p"}'])

    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert body["error"]["details"] == {"limit_bytes": 64}


@override_settings(TRELLIS_MAX_BODY_BYTES=64, TRELLIS_MAX_UPLOAD_BYTES=10_000)
def test_chunked_upload_gets_the_upload_limit():
    status, _ = _post([b"x" * 100, b"x" * 100], content_type=b"multipart/form-data; boundary=zzz")

    assert status != 413  # 200 bytes: over the body limit, under the upload limit


@override_settings(TRELLIS_MAX_BODY_BYTES=64)
def test_chunked_body_under_the_limit_reaches_django():
    status, body = _post([b'{"username": ', b'"u"}'])

    assert status == 400
    assert body["error"]["code"] == "invalid"
