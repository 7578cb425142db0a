"""Alert rules (create, change, delete) and the alert inbox's actions (acknowledge, resolve).

``alert_rule_validate`` is the one check a rule passes before it is stored, from the page's
form, the API or code: one target (an entity or a watchlist, not both), the condition's
bounds (``ml.sentiment.alerts`` says what they are), e-mail addresses, and a webhook URL
with a signing secret (one is generated when none is given; the rule page shows it).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from apps.audit.services import audit_record
from apps.sentiment.models import Alert, AlertRule, SeriesBucket
from apps.sentiment.services.alerting import rule_condition
from apps.sentiment.services.delivery import rule_emails

RULE_FIELDS = (
    "name",
    "entity",
    "watchlist",
    "condition",
    "threshold",
    "width_s",
    "window",
    "baseline",
    "min_volume",
    "cooldown_s",
    "notify_email",
    "webhook_url",
    "webhook_secret",
    "enabled",
)
MAX_WINDOW_BUCKETS = 24 * 30  # a month of hourly buckets; the series query stays small
MAX_COOLDOWN_S = 30 * 86_400
SECRET_BYTES = 32


def alert_rule_validate(rule: AlertRule) -> None:
    """Raises ValidationError (per field where it can) when the rule may not be stored."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if (rule.entity_id is None) == (rule.watchlist_id is None):
        add("__all__", "Choose an entity or a watchlist (one of them, not both).")
    if rule.width_s not in SeriesBucket.Width.values:
        add("width_s", f"Choose one of {', '.join(str(w) for w in SeriesBucket.Width.values)} seconds.")
    for name, value, low, high in (
        ("window", rule.window, 1, MAX_WINDOW_BUCKETS),
        ("baseline", rule.baseline, 2, MAX_WINDOW_BUCKETS),
        ("cooldown_s", rule.cooldown_s, 0, MAX_COOLDOWN_S),
        ("min_volume", rule.min_volume, 1, 1_000_000),
    ):
        if value is None or not low <= value <= high:
            add(name, f"Must be from {low} to {high}.")
    if not errors:
        try:
            rule_condition(rule)
        except ValidationError as exc:
            add("threshold", " ".join(exc.messages))
    email = EmailValidator()
    for address in rule_emails(rule):
        try:
            email(address)
        except ValidationError:
            add("notify_email", f"{address!r} is not an e-mail address.")
    if rule.webhook_url:
        try:
            URLValidator(schemes=["http", "https"])(rule.webhook_url)
        except ValidationError:
            add("webhook_url", "Use an http:// or https:// URL.")
    if errors:
        raise ValidationError(errors)


def alert_rule_save(
    *, values: dict[str, Any], user: Any, rule: AlertRule | None = None, request: Any = None
) -> AlertRule:
    """Creates (``rule`` None) or changes a rule from field values; audited.

    Raises:
        ValidationError: see ``alert_rule_validate``.
    """
    creating = rule is None
    rule = rule or AlertRule(created_by=user)
    for name, value in values.items():
        if name not in RULE_FIELDS:
            raise ValidationError({name: "Not a field of an alert rule."})
        setattr(rule, name, value)
    if rule.webhook_url and not rule.webhook_secret:
        rule.webhook_secret = secrets.token_urlsafe(SECRET_BYTES)
    alert_rule_validate(rule)
    with transaction.atomic():
        rule.save()
        audit_record(
            actor=user,
            action="sentiment_alert_rule.create" if creating else "sentiment_alert_rule.update",
            target=rule,
            request=request,
            summary=f"{'created' if creating else 'changed'} alert rule "
            f"{rule.name!r} ({rule.get_condition_display()} {rule.threshold:g})",
            details={"rule": rule.pk, "fields": sorted(values)},
        )
    return rule


def alert_rule_delete(*, rule: AlertRule, user: Any, request: Any = None) -> None:
    """Deletes the rule and its alerts (audited with how many)."""
    with transaction.atomic():
        alerts = rule.alerts.count()
        audit_record(
            actor=user,
            action="sentiment_alert_rule.delete",
            target=rule,
            request=request,
            summary=f"deleted alert rule {rule.name!r} and its {alerts} alert(s)",
            details={"rule": rule.pk, "alerts": alerts},
        )
        rule.delete()


def alert_rule_list() -> QuerySet[AlertRule]:
    return AlertRule.objects.select_related("entity", "watchlist").annotate(
        open_alerts=Count("alerts", filter=Q(alerts__status=Alert.Status.OPEN))
    )


# --- the inbox


def alert_list(*, status: str = "", symbol: str = "") -> QuerySet[Alert]:
    alerts = Alert.objects.select_related("rule__watchlist", "entity", "acknowledged_by", "resolved_by")
    if status:
        alerts = alerts.filter(status=status)
    if symbol:
        alerts = alerts.filter(entity__symbol=symbol.upper())
    return alerts


def alert_counts() -> dict[str, int]:
    counts = dict.fromkeys(Alert.Status.values, 0)
    for row in Alert.objects.values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def alert_acknowledge(*, alert: Alert, user: Any) -> Alert:
    """OPEN -> ACKNOWLEDGED (someone is on it). Acknowledging twice changes nothing.

    Raises:
        ValidationError: the alert is resolved already.
    """
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status == Alert.Status.RESOLVED:
            raise ValidationError("This alert is resolved already.")
        if alert.status == Alert.Status.OPEN:
            alert.status, alert.acknowledged_by, alert.acknowledged_at = (
                Alert.Status.ACKNOWLEDGED,
                user,
                timezone.now(),
            )
            alert.save(update_fields=["status", "acknowledged_by", "acknowledged_at"])
    return alert


def alert_resolve(*, alert: Alert, user: Any) -> Alert:
    """OPEN or ACKNOWLEDGED -> RESOLVED (an open one counts as acknowledged by the resolver)."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status != Alert.Status.RESOLVED:
            now = timezone.now()
            if alert.acknowledged_at is None:
                alert.acknowledged_by, alert.acknowledged_at = user, now
            alert.status, alert.resolved_by, alert.resolved_at = Alert.Status.RESOLVED, user, now
            alert.save(update_fields=["status", "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at"])
    return alert
