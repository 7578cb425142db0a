"""Webhook delivery against a local receiver on 127.0.0.1: the HMAC signature verifies, the
headers are there, a 500 is retried with back-off recorded until a 2xx, and a receiver that
keeps failing ends FAILED after the maximum number of attempts."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apps.sentiment.models import Alert, AlertDelivery, AlertRule
from apps.sentiment.services.delivery import alert_delivery_attempt, webhook_signature, webhook_verify
from tests.sentiment.conftest import T0
from tests.sentiment.fixtures_alerts import BEARISH, deliver_inline, make_rule, score, texts

__all__ = ["deliver_inline", "make_rule", "score"]

pytestmark = pytest.mark.django_db
SECRET = "s3cret-for-tests"


class Receiver:
    """Answers each POST with the next status of ``statuses`` (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[dict[str, Any]] = []
        self.url = ""


@contextlib.contextmanager
def receiver(statuses: list[int]) -> Iterator[Receiver]:
    state = Receiver(statuses)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
            """Quiet."""

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(
                {"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "path": self.path}
            )
            status = state.statuses[min(len(state.requests), len(state.statuses)) - 1]
            answer = b'{"ok": true}' if status < 300 else b"receiver broke"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/trellis"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def local_network(settings) -> None:
    settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    settings.TRELLIS_SENTIMENT_ALERT_MAX_ATTEMPTS = 3


def fire(score, make_rule, url: str) -> Alert:
    make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, webhook_url=url, webhook_secret=SECRET)
    score(texts(BEARISH, "AAPL", [T0, T0]))
    return Alert.objects.get()


def test_the_webhook_is_signed_over_the_exact_body_and_verifies(score, make_rule, local_network):
    with receiver([200]) as hook:
        alert = fire(score, make_rule, hook.url)
    delivery = alert.deliveries.get(channel=AlertDelivery.Channel.WEBHOOK)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 1, 200)

    [request] = hook.requests
    headers, body = request["headers"], request["body"]
    # a receiver recomputes the HMAC over the raw bytes, with nothing but the standard library
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-trellis-signature"] == expected
    assert webhook_verify(SECRET, body, headers["x-trellis-signature"])
    assert not webhook_verify("another secret", body, headers["x-trellis-signature"])
    assert not webhook_verify(SECRET, body.replace(b"AAPL", b"MSFT"), headers["x-trellis-signature"])
    payload = json.loads(body)
    assert headers["x-trellis-delivery"] == str(delivery.pk) == str(payload["delivery"])
    assert headers["x-trellis-timestamp"] == str(payload["timestamp"])
    assert headers["content-type"] == "application/json"
    assert payload["alert"]["id"] == alert.pk and payload["alert"]["entity"]["symbol"] == "AAPL"
    assert payload["alert"]["message"] == alert.message and len(payload["alert"]["documents"]) == 2


def test_a_500_is_retried_with_back_off_then_the_2xx_counts(score, make_rule, local_network):
    with receiver([500, 503, 204]) as hook:
        alert = fire(score, make_rule, hook.url)
    delivery = alert.deliveries.get(channel=AlertDelivery.Channel.WEBHOOK)
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.last_error) == ("sent", 3, 204, "")
    assert delivery.next_attempt_at is None
    # three POSTs of the same delivery, each signed
    assert len(hook.requests) == 3
    assert {r["headers"]["x-trellis-delivery"] for r in hook.requests} == {str(delivery.pk)}
    assert all(webhook_verify(SECRET, r["body"], r["headers"]["x-trellis-signature"]) for r in hook.requests)


def test_a_receiver_that_keeps_failing_ends_failed_with_its_answer(score, make_rule, local_network):
    with receiver([500]) as hook:
        alert = fire(score, make_rule, hook.url)
    delivery = alert.deliveries.get(channel=AlertDelivery.Channel.WEBHOOK)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 3, 500)
    assert "answered HTTP 500" in delivery.last_error
    assert len(hook.requests) == 3  # TRELLIS_SENTIMENT_ALERT_MAX_ATTEMPTS
    assert alert.deliveries.get(channel=AlertDelivery.Channel.SOCKET).status == "sent"  # channels are independent


def test_one_attempt_records_the_back_off_before_the_retry(score, make_rule, local_network, settings, monkeypatch):
    from apps.sentiment.services import delivery as service

    settings.TRELLIS_SENTIMENT_ALERT_RETRY_BASE_S = 30.0
    monkeypatch.setattr(service, "delivery_enqueue", lambda *args: None)  # attempts are made by hand below
    with receiver([500, 200]) as hook:
        make_rule(
            condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, webhook_url=hook.url, webhook_secret=SECRET
        )
        score(texts(BEARISH, "AAPL", [T0]))
        delivery = AlertDelivery.objects.get(channel=AlertDelivery.Channel.WEBHOOK)
        first = alert_delivery_attempt(delivery.pk, 0)
        delivery.refresh_from_db()
        assert (first.attempted, first.retry_in, delivery.attempts, delivery.response_code) == (True, 30.0, 1, 500)
        assert delivery.status == "pending" and delivery.next_attempt_at is not None
        # a duplicate of the first message finds its attempt made: nothing is sent twice
        assert alert_delivery_attempt(delivery.pk, 0).attempted is False
        second = alert_delivery_attempt(delivery.pk, 1)
    delivery.refresh_from_db()
    assert (second.status, delivery.attempts, len(hook.requests)) == ("sent", 2, 2)


def test_an_address_inside_the_server_network_is_refused(score, make_rule, settings):
    settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS = []
    settings.TRELLIS_SENTIMENT_ALERT_MAX_ATTEMPTS = 2
    alert = fire(score, make_rule, "http://127.0.0.1:9/never")
    delivery = alert.deliveries.get(channel=AlertDelivery.Channel.WEBHOOK)
    assert delivery.status == "failed" and delivery.response_code is None
    assert "127.0.0.1" in delivery.last_error


def test_signature_helper_matches_the_documented_recipe():
    body = b'{"alert":{"id":1}}'
    assert webhook_signature("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
