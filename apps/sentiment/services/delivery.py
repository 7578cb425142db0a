"""Alert delivery: live to the analysts' dashboards, by email, and by signed webhook.

Every alert gets one ``AlertDelivery`` row per channel, created in the transaction that
creates the alert; each row is sent by ``alert_tasks.alert_delivery_send_task`` after that
transaction commits. A failed attempt is recorded (``attempts``, ``last_error``,
``response_code``, ``next_attempt_at``) and retried with exponential back-off
(``TRELLIS_SENTIMENT_ALERT_RETRY_BASE_S`` doubled per attempt, capped at
``TRELLIS_SENTIMENT_ALERT_RETRY_MAX_S``) until ``TRELLIS_SENTIMENT_ALERT_MAX_ATTEMPTS``, then it
is FAILED. A 2xx answer (webhook), an accepted message (email) or a group send (socket) is SENT.

Each attempt is claimed under a row lock before anything is sent: the claim names the
attempt number it expects, so a duplicated or redelivered task message never sends twice,
and a claim whose sender died is taken over once its lease (``IN_FLIGHT_LEASE_S``) ran out.

Webhooks (``apps.core.outbound.fetch``, the one way out) carry the JSON body below and
``X-Trellis-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed with the
rule's webhook secret>``, ``X-Trellis-Timestamp`` (Unix seconds) and ``X-Trellis-Delivery``
(the delivery id, the same on every retry: a receiver drops repeats by it). The timestamp
and delivery id are inside the signed body too. See ``webhook_verify`` and the README.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.core.outbound import OutboundError, fetch
from apps.sentiment.models import Alert, AlertDelivery, AlertRule

log = logging.getLogger(__name__)

ALERTS_GROUP = "sentiment.alerts"  # every analyst's dashboard socket (consumers.SentimentLiveConsumer)
SIGNATURE_HEADER = "X-Trellis-Signature"
TIMESTAMP_HEADER = "X-Trellis-Timestamp"
DELIVERY_HEADER = "X-Trellis-Delivery"
# A claimed attempt is in flight this long at most: the webhook's whole exchange is bounded
# by WEBHOOK_TOTAL_TIMEOUT_S and an SMTP send by its timeout, so a claim older than this lost
# its sender (a killed worker) and may be taken over. Seconds.
IN_FLIGHT_LEASE_S = 120
WEBHOOK_TIMEOUT_S = 5.0  # connect and each read
WEBHOOK_TOTAL_TIMEOUT_S = 15.0
WEBHOOK_MAX_RESPONSE_BYTES = 64 * 1024  # a receiver's answer is read only for its status
PAYLOAD_DOCUMENTS = 10  # documents in a notification (the alert page lists them all)
SNIPPET_CHARS = 280
ERROR_MAX_CHARS = 500
RUN_INLINE = False  # tests and management commands: deliver in this process (see delivery_enqueue)


class DeliveryFailed(Exception):
    """One attempt did not deliver; ``response_code`` when a server answered."""

    def __init__(self, message: str, response_code: int | None = None) -> None:
        super().__init__(message)
        self.response_code = response_code


@dataclass(frozen=True)
class Outcome:
    """What one call of ``alert_delivery_attempt`` did."""

    status: str  # the delivery's status afterwards
    attempted: bool  # False: nothing to do (already sent, failed, or claimed by another task)
    retry_in: float | None = None  # seconds until the next attempt, when one is due
    attempts: int = 0


# --- payloads


def _site_url(path: str) -> str:
    return settings.TRELLIS_SENTIMENT_ALERT_SITE_URL.rstrip("/") + path


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The alert as the dashboard, the email and the webhook show it (JSON-ready)."""
    rule, entity = alert.rule, alert.entity
    documents = list(alert.documents.order_by("-published_at", "-id")[:PAYLOAD_DOCUMENTS])
    return {
        "id": alert.pk,
        "rule": {
            "id": rule.pk,
            "name": rule.name,
            "condition": rule.condition,
            "watchlist": rule.watchlist.name if rule.watchlist_id else None,
        },
        "entity": {"symbol": entity.symbol, "name": entity.name},
        "value": alert.value,
        "threshold": alert.threshold,
        "message": alert.message,
        "window_start": alert.window_start.isoformat(),
        "window_end": alert.window_end.isoformat(),
        "fired_at": alert.fired_at.isoformat(),
        "status": alert.status,
        "url": reverse("sentiment:alert", args=[alert.pk]),
        "documents_total": alert.documents.count(),
        "documents": [
            {
                "id": d.pk,
                "title": d.title,
                "text": d.text[:SNIPPET_CHARS],
                "url": d.url,
                "published_at": d.published_at.isoformat(),
                "page": reverse("sentiment:document", args=[d.pk]),
            }
            for d in documents
        ],
    }


def webhook_body(delivery: AlertDelivery, payload: dict[str, Any], timestamp: int) -> bytes:
    """The exact bytes that are signed and sent."""
    envelope = {"type": "sentiment.alert", "delivery": delivery.pk, "timestamp": timestamp, "alert": payload}
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def webhook_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``body`` keyed with ``secret`` (UTF-8)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature over the raw body, compare in constant time."""
    return hmac.compare_digest(webhook_signature(secret, body), header or "")


# --- creating and queueing


def alert_deliveries_create(alert: Alert) -> list[AlertDelivery]:
    """One delivery per channel the rule asks for (the dashboard always); call inside the
    alert's transaction. They are sent after it commits."""
    rule = alert.rule
    rows = [AlertDelivery(alert=alert, channel=AlertDelivery.Channel.SOCKET, target=ALERTS_GROUP)]
    emails = rule_emails(rule)
    if emails:
        rows.append(AlertDelivery(alert=alert, channel=AlertDelivery.Channel.EMAIL, target=", ".join(emails)))
    if rule.webhook_url:
        rows.append(AlertDelivery(alert=alert, channel=AlertDelivery.Channel.WEBHOOK, target=rule.webhook_url))
    created = AlertDelivery.objects.bulk_create(rows)
    if created and created[0].pk is None:  # backends that return no ids from bulk_create
        created = list(alert.deliveries.all())
    for delivery in created:
        delivery_enqueue(delivery.pk, 0)
    return created


def rule_emails(rule: AlertRule) -> list[str]:
    return [a.strip() for a in rule.notify_email.replace(";", ",").split(",") if a.strip()]


def delivery_enqueue(delivery_id: int, attempt: int) -> None:
    """Queues attempt ``attempt + 1`` once the current transaction commits (a worker never
    sees an uncommitted delivery). ``RUN_INLINE`` runs it in this process at once, retries
    included (Celery's eager ``apply`` runs a retry straight away, without its countdown)."""
    from apps.sentiment.alert_tasks import alert_delivery_send_task

    if RUN_INLINE:
        alert_delivery_send_task.apply(args=(delivery_id, attempt))
        return
    transaction.on_commit(lambda: alert_delivery_send_task.delay(delivery_id, attempt))


# --- sending


def retry_delay(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: base * 2^(attempts - 1), capped."""
    base = float(settings.TRELLIS_SENTIMENT_ALERT_RETRY_BASE_S)
    return min(float(settings.TRELLIS_SENTIMENT_ALERT_RETRY_MAX_S), base * 2 ** max(0, attempts - 1))


def _claim(delivery_id: int, expected_attempts: int) -> AlertDelivery | None:
    """Takes attempt ``expected_attempts + 1`` of the delivery, or None when it is not ours."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            AlertDelivery.objects.select_for_update()
            .select_related("alert__rule", "alert__entity")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != AlertDelivery.Status.PENDING:
            return None
        lease_over = delivery.next_attempt_at is not None and delivery.next_attempt_at <= now
        if delivery.attempts != expected_attempts and not lease_over:
            return None  # a duplicate message, or another task is sending it right now
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=IN_FLIGHT_LEASE_S)
        delivery.save(update_fields=["attempts", "next_attempt_at", "updated_at"])
    return delivery


def _send_socket(delivery: AlertDelivery, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        raise DeliveryFailed("no channel layer is configured")
    try:
        async_to_sync(layer.group_send)(ALERTS_GROUP, {"type": "sentiment.alert", "alert": payload})
    except Exception as exc:  # Redis down or full: retried like any other channel
        raise DeliveryFailed(f"channel layer: {type(exc).__name__}: {exc}") from exc


def _send_email(delivery: AlertDelivery, payload: dict[str, Any]) -> None:
    lines = [
        payload["message"],
        "",
        f"Rule: {payload['rule']['name']}",
        f"Window: {payload['window_start']} - {payload['window_end']}",
        f"Open it: {_site_url(payload['url'])}",
        "",
    ]
    if payload["documents"]:
        lines.append(f"Documents ({payload['documents_total']}):")
        lines += [f"- {d['published_at']}: {d['title'] or d['text']}" for d in payload["documents"]]
    try:
        sent = send_mail(
            subject=f"[Trellis] {payload['message']}"[:200],
            message="\n".join(lines),
            from_email=None,
            recipient_list=delivery.target.split(", "),
            fail_silently=False,
        )
    except Exception as exc:  # SMTP refusals, timeouts, a bad backend configuration
        raise DeliveryFailed(f"email: {type(exc).__name__}: {exc}") from exc
    if not sent:
        raise DeliveryFailed("email: the backend accepted no message")


def _send_webhook(delivery: AlertDelivery, payload: dict[str, Any]) -> int:
    timestamp = int(time.time())
    body = webhook_body(delivery, payload, timestamp)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: webhook_signature(delivery.alert.rule.webhook_secret, body),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: str(delivery.pk),
    }
    try:
        # No redirects: a signed POST must reach the URL the analyst entered, nowhere else.
        response = fetch(
            delivery.target,
            method="POST",
            headers=headers,
            body=body,
            timeout=WEBHOOK_TIMEOUT_S,
            total_timeout=WEBHOOK_TOTAL_TIMEOUT_S,
            max_bytes=WEBHOOK_MAX_RESPONSE_BYTES,
            max_redirects=0,
        )
    except OutboundError as exc:
        raise DeliveryFailed(f"webhook: {exc.message}") from exc
    if not 200 <= response.status < 300:
        raise DeliveryFailed(f"webhook: the receiver answered HTTP {response.status}", response.status)
    return response.status


def alert_delivery_attempt(delivery_id: int, expected_attempts: int = 0) -> Outcome:
    """Makes one attempt (when it is this caller's to make) and records how it went."""
    delivery = _claim(delivery_id, expected_attempts)
    if delivery is None:
        status = AlertDelivery.objects.filter(pk=delivery_id).values_list("status", flat=True).first()
        return Outcome(status=status or "missing", attempted=False)
    code: int | None = None
    error = ""
    try:
        payload = alert_payload(delivery.alert)
        if delivery.channel == AlertDelivery.Channel.SOCKET:
            _send_socket(delivery, payload)
        elif delivery.channel == AlertDelivery.Channel.EMAIL:
            _send_email(delivery, payload)
        else:
            code = _send_webhook(delivery, payload)
    except DeliveryFailed as exc:
        code, error = exc.response_code, str(exc)[:ERROR_MAX_CHARS]
    return _record(delivery, code=code, error=error)


def _record(delivery: AlertDelivery, *, code: int | None, error: str) -> Outcome:
    max_attempts = int(settings.TRELLIS_SENTIMENT_ALERT_MAX_ATTEMPTS)
    retry_in = None
    delivery.response_code, delivery.last_error = code, error
    if not error:
        delivery.status, delivery.next_attempt_at = AlertDelivery.Status.SENT, None
    elif delivery.attempts >= max_attempts:
        delivery.status, delivery.next_attempt_at = AlertDelivery.Status.FAILED, None
        log.warning(
            "alert delivery %s (%s) failed for good after %s attempts: %s",
            delivery.pk,
            delivery.channel,
            delivery.attempts,
            error,
        )
    else:
        retry_in = retry_delay(delivery.attempts)
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=retry_in)
        log.info(
            "alert delivery %s (%s) attempt %s failed, retrying in %.0f s: %s",
            delivery.pk,
            delivery.channel,
            delivery.attempts,
            retry_in,
            error,
        )
    delivery.save(update_fields=["status", "next_attempt_at", "response_code", "last_error", "updated_at"])
    return Outcome(status=delivery.status, attempted=True, retry_in=retry_in, attempts=delivery.attempts)


def alert_delivery_retry_now(delivery: AlertDelivery) -> AlertDelivery:
    """An analyst's "retry" of a FAILED delivery: one more round of attempts."""
    with transaction.atomic():
        row = AlertDelivery.objects.select_for_update().get(pk=delivery.pk)
        if row.status != AlertDelivery.Status.FAILED:
            return row
        row.status, row.attempts, row.next_attempt_at, row.last_error = AlertDelivery.Status.PENDING, 0, None, ""
        row.save(update_fields=["status", "attempts", "next_attempt_at", "last_error", "updated_at"])
        delivery_enqueue(row.pk, 0)
    return row
