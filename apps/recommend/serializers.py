"""Input and output shapes of the recommend API (``/api/recommend/``).

Input serializers only validate; the services decide. Names start with ``Recommend`` or the
entity, so drf-spectacular's component names stay unique across apps.
"""

from __future__ import annotations

import math

from django.conf import settings
from rest_framework import serializers

from apps.recommend.models import KEY_PATTERN, ABTest, CatalogueImport, EvaluationRun, EventKind, Item, WidgetKey

MAX_K = settings.TRELLIS_RECOMMEND_MAX_K


class FiniteFloatField(serializers.FloatField):
    """A float that is a number: NaN and infinity are refused (they cannot be stored or compared)."""

    def to_internal_value(self, data: object) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class ItemOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = ("external_id", "title", "description", "category", "price", "available", "attributes",
                  "embedded_at", "created_at", "updated_at")
        read_only_fields = fields


class ItemInputSerializer(serializers.Serializer):
    """Checked again by ``services.catalogue.item_values`` (the import's rules)."""

    external_id = serializers.RegexField(KEY_PATTERN, required=False)
    title = serializers.CharField(max_length=300, required=False)
    description = serializers.CharField(allow_blank=True, required=False, max_length=20_000)
    category = serializers.CharField(allow_blank=True, required=False, max_length=100)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, allow_null=True, required=False)
    available = serializers.BooleanField(required=False)
    attributes = serializers.DictField(required=False)


class ItemFilterSerializer(serializers.Serializer):
    q = serializers.CharField(required=False, max_length=100, help_text="Words in the id or title.")
    category = serializers.CharField(required=False, max_length=100)


class RecommendQuerySerializer(serializers.Serializer):
    k = serializers.IntegerField(default=10, min_value=1, max_value=MAX_K)
    category = serializers.CharField(required=False, default="", max_length=100, help_text="Only this category.")
    exclude_category = serializers.CharField(required=False, default="", max_length=100)
    session = serializers.RegexField(KEY_PATTERN, required=False, default="",
                                     help_text="The visitor's session, for events sent before they signed in.")


class SimilarQuerySerializer(serializers.Serializer):
    k = serializers.IntegerField(default=10, min_value=1, max_value=MAX_K)


class RecommendedItemSerializer(serializers.Serializer):
    item = ItemOutputSerializer()
    score = serializers.FloatField(help_text="The blended score the list is ordered by.")
    contributions = serializers.DictField(
        child=serializers.FloatField(),
        help_text="Recommender -> its share of the score (weight x its score rescaled to 0-1); they add up to score.")
    reason = serializers.CharField(help_text="Shown to the shopper: 'Because you bought X', 'Popular in Y'.")
    reason_kind = serializers.CharField()
    anchor_item = serializers.CharField(allow_null=True)
    impression_id = serializers.UUIDField(allow_null=True, help_text="Send it to clicks/ when the item is clicked.")


class RecommendationListOutputSerializer(serializers.Serializer):
    results = RecommendedItemSerializer(many=True)
    ab_test = serializers.IntegerField(allow_null=True, source="ab_test.pk", default=None)
    variant = serializers.CharField()
    fitted = serializers.CharField(help_text="Which fit of the recommenders answered.")
    notes = serializers.ListField(child=serializers.CharField())


# The recommendation answer built directly, without DRF's per-request field machinery (it took
# ~8% of a recommendations request, bench/bench_recommend_api.py). The serializers above stay
# the documented shape; tests/recommend/test_recommendations.py checks both give the same data.
_DATETIME = serializers.DateTimeField()
_PRICE = serializers.DecimalField(max_digits=12, decimal_places=2)


def _when(value: object) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


def _item_data(item: Item) -> dict:
    return {"external_id": item.external_id, "title": item.title, "description": item.description,
            "category": item.category, "price": None if item.price is None else _PRICE.to_representation(item.price),
            "available": item.available, "attributes": item.attributes, "embedded_at": _when(item.embedded_at),
            "created_at": _when(item.created_at), "updated_at": _when(item.updated_at)}


def recommendation_list_data(result: object) -> dict:
    """``RecommendationListOutputSerializer(result).data``, the same dict, built faster."""
    return {
        "results": [{"item": _item_data(r.item), "score": float(r.score),
                     "contributions": {name: float(share) for name, share in r.contributions.items()},
                     "reason": str(r.reason), "reason_kind": str(r.reason_kind), "anchor_item": r.anchor_item,
                     "impression_id": r.impression_id and str(r.impression_id)}
                    for r in result.results],
        "ab_test": result.ab_test.pk if result.ab_test is not None else None,
        "variant": str(result.variant), "fitted": str(result.fitted), "notes": [str(n) for n in result.notes],
    }


def widget_list_data(result: object) -> dict:
    """``WidgetOutputSerializer(result).data``, built the same way."""
    return {"results": [{"external_id": r.item.external_id, "title": r.item.title,
                         "price": None if r.item.price is None else _PRICE.to_representation(r.item.price),
                         "reason": str(r.reason), "impression_id": r.impression_id and str(r.impression_id)}
                        for r in result.results]}


class EventInputSerializer(serializers.Serializer):
    event_id = serializers.CharField(max_length=100)
    user = serializers.RegexField(KEY_PATTERN, required=False, allow_blank=True, default="")
    session = serializers.RegexField(KEY_PATTERN, required=False, allow_blank=True, default="")
    item = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=EventKind.choices)
    value = FiniteFloatField(default=1.0, min_value=-1e6, max_value=1e6,
                                   help_text="Quantity of a purchase, stars (0-5) of a rating.")
    ts = serializers.DateTimeField(required=False, help_text="When it happened (ISO 8601); default now.")

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("user") and not attrs.get("session"):
            raise serializers.ValidationError("give user or session (or both, which merges the session)")
        return attrs


class EventBatchInputSerializer(serializers.Serializer):
    events = EventInputSerializer(many=True, allow_empty=False, max_length=settings.TRELLIS_RECOMMEND_MAX_EVENTS)


class EventRejectedSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    event_id = serializers.CharField()
    error = serializers.CharField()


class EventBatchOutputSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Event ids seen before: nothing changed.")
    rejected = EventRejectedSerializer(many=True)
    merged = serializers.IntegerField(help_text="Anonymous session events given to their user.")


class SessionMergeInputSerializer(serializers.Serializer):
    session = serializers.RegexField(KEY_PATTERN)
    user = serializers.RegexField(KEY_PATTERN)


class SessionMergeOutputSerializer(serializers.Serializer):
    merged = serializers.IntegerField()


class ClickInputSerializer(serializers.Serializer):
    impression_id = serializers.UUIDField()


class ClickOutputSerializer(serializers.Serializer):
    impression_id = serializers.UUIDField()
    clicked_at = serializers.DateTimeField()


class CatalogueImportInputSerializer(serializers.Serializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=CatalogueImport.Format.choices, required=False,
                                     help_text="Default: from the file name (.jsonl -> JSON lines, else CSV).")


class LineErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    error = serializers.CharField()


class CatalogueImportOutputSerializer(serializers.ModelSerializer):
    line_errors = LineErrorSerializer(many=True)

    class Meta:
        model = CatalogueImport
        fields = ("id", "filename", "format", "status", "progress", "total_rows", "created", "updated", "rejected",
                  "line_errors", "error", "created_at", "finished_at")
        read_only_fields = fields


class VariantSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=40)
    weights = serializers.DictField(child=FiniteFloatField(min_value=0))
    diversity = FiniteFloatField(default=0.0, min_value=0.0, max_value=1.0)


class ABTestInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    variants = VariantSerializer(many=True, min_length=2, max_length=2)


class VariantResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    impressions = serializers.IntegerField()
    clicks = serializers.IntegerField()
    purchases = serializers.IntegerField()
    users = serializers.IntegerField()
    ctr = serializers.FloatField()
    ctr_ci = serializers.ListField(child=serializers.FloatField())
    conversion = serializers.FloatField()
    conversion_ci = serializers.ListField(child=serializers.FloatField())


class ABTestOutputSerializer(serializers.ModelSerializer):
    variants = VariantSerializer(many=True)
    results = VariantResultSerializer(many=True, required=False)

    class Meta:
        model = ABTest
        fields = ("id", "name", "status", "variants", "winner", "created_at", "stopped_at", "results")
        read_only_fields = fields


class ABTestStopInputSerializer(serializers.Serializer):
    winner = serializers.CharField(required=False, allow_blank=True, default="", max_length=40)
    make_default = serializers.BooleanField(default=False)


class EvaluationInputSerializer(serializers.Serializer):
    cutoff = serializers.DateTimeField(help_text="Train on events before it, test on those after.")
    k = serializers.IntegerField(default=10, min_value=1, max_value=MAX_K)
    kinds = serializers.ListField(child=serializers.ChoiceField(choices=EventKind.choices), default=["purchase"],
                                  allow_empty=False, max_length=5)


class EvaluationOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvaluationRun
        fields = ("id", "status", "progress", "params", "results", "error", "created_at", "finished_at")
        read_only_fields = fields


class TaskQueuedSerializer(serializers.Serializer):
    queued = serializers.CharField()


class WidgetKeyInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    allowed_origins = serializers.ListField(child=serializers.CharField(max_length=200), allow_empty=False,
                                            max_length=20)


class WidgetKeyOutputSerializer(serializers.ModelSerializer):
    """A key as listed: never its signing secret (that is shown once, at creation or rotation)."""

    class Meta:
        model = WidgetKey
        fields = ("id", "name", "public_key", "allowed_origins", "active", "created_at")
        read_only_fields = fields


class WidgetKeySecretSerializer(WidgetKeyOutputSerializer):
    """The answer to creating a key or rotating its secret: the only time the secret is shown."""

    class Meta(WidgetKeyOutputSerializer.Meta):
        fields = (*WidgetKeyOutputSerializer.Meta.fields, "signing_secret")
        read_only_fields = fields


class WidgetQuerySerializer(serializers.Serializer):
    key = serializers.CharField(max_length=64)
    k = serializers.IntegerField(default=6, min_value=1, max_value=24)
    session = serializers.RegexField(KEY_PATTERN, required=False, default="")
    user = serializers.RegexField(KEY_PATTERN, required=False, default="")
    signature = serializers.RegexField(r"^[0-9a-fA-F]{64}$", required=False, default="")
    item = serializers.RegexField(KEY_PATTERN, required=False, default="",
                                  help_text="On a product page: items similar to this one.")


class WidgetItemSerializer(serializers.Serializer):
    external_id = serializers.CharField(source="item.external_id")
    title = serializers.CharField(source="item.title")
    price = serializers.DecimalField(source="item.price", max_digits=12, decimal_places=2, allow_null=True)
    reason = serializers.CharField()
    impression_id = serializers.UUIDField(allow_null=True)


class WidgetOutputSerializer(serializers.Serializer):
    results = WidgetItemSerializer(many=True)


class WidgetClickInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=64)
    impression_id = serializers.UUIDField()
