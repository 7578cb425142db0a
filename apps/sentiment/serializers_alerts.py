"""Input and output shapes of the alert side of ``/api/sentiment/``: alerts, rules,
corrections, backtests, explanations. Input serializers only validate shapes; the services
decide. Names start with ``Sentiment`` or ``Alert`` so drf-spectacular's components stay unique."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.sentiment.models import Alert, AlertDelivery, AlertRule, BacktestRun, Correction, Entity, Label, Watchlist
from apps.sentiment.services.backtest import param_fields


class FiniteFloatField(serializers.FloatField):
    def to_internal_value(self, data: object) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class AlertDocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    text = serializers.CharField()
    url = serializers.CharField()
    published_at = serializers.DateTimeField()


class AlertDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertDelivery
        fields = (
            "id",
            "channel",
            "target",
            "status",
            "attempts",
            "next_attempt_at",
            "response_code",
            "last_error",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class AlertOutputSerializer(serializers.ModelSerializer):
    rule = serializers.PrimaryKeyRelatedField(read_only=True)
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    condition = serializers.CharField(source="rule.condition", read_only=True)
    symbol = serializers.CharField(source="entity.symbol", read_only=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", read_only=True, default=None)
    resolved_by = serializers.CharField(source="resolved_by.username", read_only=True, default=None)

    class Meta:
        model = Alert
        fields = (
            "id",
            "rule",
            "rule_name",
            "condition",
            "symbol",
            "fired_at",
            "value",
            "threshold",
            "message",
            "window_start",
            "window_end",
            "status",
            "acknowledged_by",
            "acknowledged_at",
            "resolved_by",
            "resolved_at",
        )
        read_only_fields = fields


class AlertDetailSerializer(AlertOutputSerializer):
    documents = serializers.SerializerMethodField()
    deliveries = AlertDeliverySerializer(many=True, read_only=True)

    class Meta(AlertOutputSerializer.Meta):
        fields = (*AlertOutputSerializer.Meta.fields, "documents", "deliveries")
        read_only_fields = fields

    @extend_schema_field(AlertDocumentSerializer(many=True))
    def get_documents(self, alert: Alert) -> list[dict[str, Any]]:
        docs = alert.documents.order_by("-published_at", "-id")[:200]
        return AlertDocumentSerializer(docs, many=True).data


class AlertFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Alert.Status.choices, required=False)
    symbol = serializers.CharField(required=False, max_length=15)


class AlertRuleSerializer(serializers.ModelSerializer):
    """Create, change and show a rule. ``entity`` is a symbol, ``watchlist`` an id (one of them).
    ``webhook_secret`` is generated when a webhook URL comes without one."""

    entity = serializers.SlugRelatedField(
        slug_field="symbol", queryset=Entity.objects.all(), required=False, allow_null=True
    )
    watchlist = serializers.PrimaryKeyRelatedField(queryset=Watchlist.objects.all(), required=False, allow_null=True)
    threshold = FiniteFloatField()
    open_alerts = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = AlertRule
        fields = (
            "id",
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
            "created_at",
            "open_alerts",
        )
        read_only_fields = ("id", "created_at", "open_alerts")
        extra_kwargs = {"webhook_secret": {"required": False, "max_length": 100}}


class CorrectionInputSerializer(serializers.Serializer):
    document = serializers.IntegerField(min_value=1)
    label = serializers.ChoiceField(choices=Label.choices)
    entity = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=15,
        help_text="A symbol the document mentions; empty: the whole document.",
    )


class CorrectionOutputSerializer(serializers.ModelSerializer):
    entity = serializers.CharField(source="entity.symbol", read_only=True, default=None)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = Correction
        fields = ("id", "document", "entity", "label", "previous_label", "model_version", "created_by", "created_at")
        read_only_fields = fields


class CorrectionsExportInputSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)


class CorrectionsExportOutputSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(help_text="The mlops dataset id (GET /api/mlops/datasets/<id>/).")
    rows = serializers.IntegerField()
    label_counts = serializers.DictField(child=serializers.IntegerField())


def _param_serializer_field(f: dataclasses.Field) -> serializers.Field:
    meta, help_text = f.metadata, f.metadata["help"]
    if f.name in ("since", "until"):
        return serializers.DateField(required=False, allow_null=True, help_text=help_text)
    if f.name == "symbols":
        return serializers.ListField(
            child=serializers.CharField(max_length=15), required=False, max_length=500, help_text=help_text
        )
    if f.name == "basis":
        return serializers.CharField(required=False, max_length=120, default=f.default, help_text=help_text)
    field_class = serializers.IntegerField if isinstance(f.default, int) else FiniteFloatField
    return field_class(
        required=False, default=f.default, min_value=meta["low"], max_value=meta["high"], help_text=help_text
    )


class BacktestInputSerializer(serializers.Serializer):
    """The fields of ``services.backtest.BacktestParams``, with its bounds and help."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {f.name: _param_serializer_field(f) for f in param_fields()}


class BacktestOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = BacktestRun
        fields = ("id", "basis", "params", "results", "created_at")
        read_only_fields = fields


class ExplainInputSerializer(serializers.Serializer):
    target = serializers.ChoiceField(
        choices=Label.choices, required=False, help_text="The label to explain; default: the predicted one."
    )


class WordAttributionSerializer(serializers.Serializer):
    text = serializers.CharField()
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    attribution = serializers.FloatField()


class SentimentExplanationSerializer(serializers.Serializer):
    text = serializers.CharField()
    tokens = WordAttributionSerializer(many=True)
    label = serializers.CharField()
    probability = serializers.FloatField()
    target = serializers.CharField()
    target_probability = serializers.FloatField()
    method = serializers.CharField()
    convergence_delta = serializers.FloatField(allow_null=True)


class ExplainOutputSerializer(serializers.Serializer):
    document = serializers.IntegerField()
    version = serializers.CharField(help_text="The model version that explained it.")
    scored_by = serializers.CharField(allow_null=True, help_text="The version of the document's live score.")
    truncated = serializers.BooleanField(help_text="Only the first words were explained (the explainer's limit).")
    note = serializers.CharField(allow_blank=True)
    explanation = SentimentExplanationSerializer()
