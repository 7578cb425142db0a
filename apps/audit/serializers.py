"""Shapes of the audit API (``/api/audit/``); the page validates its filters with the same one."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from apps.audit.models import AuditEvent


def _moment(value: str, *, end: bool) -> datetime:
    """An ISO 8601 date-time, or a whole day: its start (``since``) or the next day's start (``until``)."""
    value = value.strip()
    try:
        day = parse_date(value)
        moment = parse_datetime(value) if day is None else None
    except ValueError:
        day = moment = None
    if day is not None:
        moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    if moment is None:
        raise serializers.ValidationError("Use an ISO 8601 date (2025-01-31) or date-time (2025-01-31T12:00:00Z).")
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class AuditEventFilterSerializer(serializers.Serializer):
    action = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                   help_text="Exact action code, e.g. model.promote.")
    actor = serializers.CharField(required=False, allow_blank=True, max_length=150,
                                  help_text="Username of who acted (case-insensitive).")
    target_type = serializers.CharField(required=False, allow_blank=True, max_length=100,
                                        help_text="app_label.model of the target, e.g. mlops.modelversion.")
    target_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    since = serializers.CharField(required=False, allow_blank=True,
                                  help_text="From this date or date-time on (inclusive, ISO 8601).")
    until = serializers.CharField(required=False, allow_blank=True,
                                  help_text="Before this date-time; a date includes that whole day (ISO 8601).")

    def validate_since(self, value: str) -> datetime | None:
        return _moment(value, end=False) if value else None

    def validate_until(self, value: str) -> datetime | None:
        return _moment(value, end=True) if value else None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and since >= until:
            raise serializers.ValidationError({"until": ["Must be later than since."]})
        return {key: value for key, value in attrs.items() if value not in ("", None)}


class AuditEventOutputSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_username", read_only=True,
                                  help_text='Username at the time; "" for system and command-line changes.')
    actor_id = serializers.IntegerField(read_only=True, allow_null=True,
                                        help_text="Null for system changes or once the account is deleted.")

    class Meta:
        model = AuditEvent
        fields = ("id", "created_at", "actor", "actor_id", "action", "target_type", "target_id", "summary",
                  "details", "ip_address", "user_agent")
        read_only_fields = fields


class AuditErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField(child=serializers.JSONField(), required=False)


class AuditErrorSerializer(serializers.Serializer):
    error = AuditErrorDetailSerializer()
