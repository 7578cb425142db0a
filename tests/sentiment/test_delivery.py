"""Alert delivery by email (Django's backend: the locmem outbox in tests) and to the dashboards'
channel-layer group; retries with exponential back-off, a failed delivery retried on request."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client

from apps.sentiment.models import Alert, AlertDelivery, AlertRule
from apps.sentiment.services.delivery import ALERTS_GROUP, retry_delay
from tests.sentiment.conftest import T0
from tests.sentiment.fixtures_alerts import BEARISH, deliver_inline, make_rule, score, texts

__all__ = ["deliver_inline", "make_rule", "score"]

pytestmark = pytest.mark.django_db


class BrokenEmailBackend(BaseEmailBackend):
    """An SMTP server that refuses everything."""

    def send_messages(self, messages):
        raise ConnectionRefusedError("connection refused by smtp.example")


def test_email_goes_to_every_address_with_the_alert_and_its_documents(score, make_rule):
    make_rule(
        condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, notify_email="ana@example.com; risk@example.com"
    )
    score(texts(BEARISH, "AAPL", [T0, T0]))
    alert = Alert.objects.get()
    [message] = mail.outbox
    assert message.to == ["ana@example.com", "risk@example.com"]
    assert message.subject == f"[Trellis] {alert.message}"
    assert f"/sentiment/alerts/{alert.pk}/" in message.body
    assert all(d.text in message.body for d in alert.documents.all())
    delivery = alert.deliveries.get(channel=AlertDelivery.Channel.EMAIL)
    assert (delivery.status, delivery.attempts, delivery.target) == ("sent", 1, "ana@example.com, risk@example.com")


def test_a_failing_mail_server_is_retried_then_failed_and_can_be_retried_later(score, make_rule, settings, make_user):
    settings.EMAIL_BACKEND = f"{__name__}.BrokenEmailBackend"
    settings.TRELLIS_SENTIMENT_ALERT_MAX_ATTEMPTS = 3
    make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3, notify_email="ana@example.com")
    score(texts(BEARISH, "AAPL", [T0]))
    delivery = AlertDelivery.objects.get(channel=AlertDelivery.Channel.EMAIL)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert "connection refused by smtp.example" in delivery.last_error

    # the server is back: an analyst's retry (the button on the alert's page) sends it
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    page = Client()
    page.force_login(make_user("analyst"))
    html = page.get(f"/sentiment/alerts/{delivery.alert_id}/").content.decode()
    retry = f"/sentiment/alerts/{delivery.alert_id}/deliveries/{delivery.pk}/retry/"
    assert retry in html and "connection refused by smtp.example" in html
    assert page.post(retry).status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 1, "")
    assert len(mail.outbox) == 1


def test_the_dashboards_group_gets_the_alert(score, make_rule):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(ALERTS_GROUP, channel)
    try:
        make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3)
        score(texts(BEARISH, "AAPL", [T0]))
        event = async_to_sync(layer.receive)(channel)
    finally:
        async_to_sync(layer.group_discard)(ALERTS_GROUP, channel)
    alert = Alert.objects.get()
    assert event["type"] == "sentiment.alert"
    assert event["alert"]["id"] == alert.pk and event["alert"]["entity"]["symbol"] == "AAPL"
    assert event["alert"]["url"] == f"/sentiment/alerts/{alert.pk}/"
    assert alert.deliveries.get().status == "sent"


def test_back_off_doubles_up_to_its_cap(settings):
    settings.TRELLIS_SENTIMENT_ALERT_RETRY_BASE_S = 30.0
    settings.TRELLIS_SENTIMENT_ALERT_RETRY_MAX_S = 200.0
    assert [retry_delay(n) for n in range(1, 6)] == [30.0, 60.0, 120.0, 200.0, 200.0]


def test_only_the_channels_a_rule_asks_for_are_used(score, make_rule):
    make_rule(condition=AlertRule.Condition.LEVEL_BELOW, threshold=-0.3)
    score(texts(BEARISH, "AAPL", [T0]))
    assert list(AlertDelivery.objects.values_list("channel", flat=True)) == ["socket"]
    assert mail.outbox == []
