"""Input and output shapes of the sentiment API (``/api/sentiment/``).

Input serializers check shapes only; the services decide (and report per item what they
refuse). Names start with ``Sentiment`` or the object, so drf-spectacular's component names
stay unique across apps.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.sentiment.models import Document, Entity, Label, Score, SeriesBucket, Source, Watchlist

WIDTH_CHOICES = [(int(v), label) for v, label in SeriesBucket.Width.choices]


# --- sources


class SourceOutputSerializer(serializers.ModelSerializer):
    url = serializers.CharField(read_only=True, help_text="Feeds: the feed's URL; empty for other kinds.")
    healthy = serializers.BooleanField(read_only=True, help_text="False after a failed poll, until the next success.")

    class Meta:
        model = Source
        fields = (
            "id",
            "name",
            "kind",
            "url",
            "enabled",
            "poll_interval_s",
            "healthy",
            "consecutive_failures",
            "last_error",
            "last_polled_at",
            "last_success_at",
            "next_poll_at",
            "documents_ingested",
            "created_at",
        )
        read_only_fields = fields


class SourceInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Source.Kind.choices)
    url = serializers.URLField(
        max_length=1000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Feeds only: the RSS or Atom URL (http or https).",
    )
    enabled = serializers.BooleanField(default=True)
    poll_interval_s = serializers.IntegerField(
        default=300,
        min_value=60,
        max_value=86_400,
        help_text="Feeds only: seconds between polls (back-off on failure).",
    )


class SourceUpdateSerializer(SourceInputSerializer):
    name = serializers.CharField(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=Source.Kind.choices, required=False)
    url = serializers.URLField(max_length=1000, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)
    poll_interval_s = serializers.IntegerField(required=False, min_value=60, max_value=86_400)


class SentimentQueuedSerializer(serializers.Serializer):
    queued = serializers.CharField()


# --- ingestion


class DocumentItemSerializer(serializers.Serializer):
    """One pushed document. Text limits and URL checks are the service's: a bad item is
    reported in ``rejected`` while the others are stored."""

    text = serializers.CharField(allow_blank=True, trim_whitespace=False)
    title = serializers.CharField(required=False, allow_blank=True, default="")
    url = serializers.CharField(required=False, allow_blank=True, default="")
    external_id = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Your id: pushing it again (to this source) changes nothing.",
    )
    language = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="ISO 639 code; detected when not given."
    )
    published_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Default: when it arrives (flagged in meta)."
    )


class DocumentPushInputSerializer(serializers.Serializer):
    documents = DocumentItemSerializer(many=True, allow_empty=False, max_length=settings.TRELLIS_SENTIMENT_MAX_BATCH)


class RejectedItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position in the documents list.")
    external_id = serializers.CharField()
    error = serializers.CharField()


class IngestReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Seen before (same text or external id): nothing changed.")
    rejected = RejectedItemSerializer(many=True)
    document_ids = serializers.ListField(child=serializers.IntegerField())


class UploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="CSV (header: text, title, published_at, url, external_id, language) "
        "or JSON lines with those fields; text is required."
    )
    format = serializers.ChoiceField(
        choices=(("csv", "CSV"), ("jsonl", "JSON lines")),
        required=False,
        help_text="Default: from the file name (.jsonl/.json -> JSON lines, else CSV).",
    )
    source = serializers.IntegerField(required=False, help_text="An upload source's id; default 'Uploads'.")


class SentimentLineErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    error = serializers.CharField()


class UploadReportSerializer(serializers.Serializer):
    source_id = serializers.IntegerField()
    rows = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    line_errors = SentimentLineErrorSerializer(many=True)
    ignored_columns = serializers.ListField(child=serializers.CharField())


# --- documents


class DocumentFilterSerializer(serializers.Serializer):
    entity = serializers.CharField(required=False, max_length=15, help_text="Documents naming this symbol.")
    label = serializers.ChoiceField(choices=Label.choices, required=False, help_text="Label of the live score.")
    since = serializers.DateTimeField(required=False, help_text="published_at >= since")
    until = serializers.DateTimeField(required=False, help_text="published_at < until")
    source = serializers.IntegerField(required=False)
    q = serializers.CharField(required=False, max_length=100, help_text="Words in the text or title.")


class SentimentScoreSerializer(serializers.ModelSerializer):
    class Meta:
        model = Score
        fields = ("model_version", "label", "value", "probabilities", "abstained", "live", "scored_at")
        read_only_fields = fields


class DocumentOutputSerializer(serializers.ModelSerializer):
    url = serializers.CharField(read_only=True, help_text="Where it was published; may be empty.")
    source_name = serializers.CharField(source="source.name")
    score = serializers.SerializerMethodField(help_text="The live score (null until scored).")
    entities = serializers.SerializerMethodField(help_text="Symbols of the entities it names.")

    class Meta:
        model = Document
        fields = (
            "id",
            "source",
            "source_name",
            "external_id",
            "title",
            "text",
            "url",
            "language",
            "published_at",
            "ingested_at",
            "score",
            "entities",
        )
        read_only_fields = fields

    @extend_schema_field(SentimentScoreSerializer(allow_null=True))
    def get_score(self, doc: Document) -> dict | None:
        live = [s for s in doc.scores.all() if s.live]
        return SentimentScoreSerializer(live[0]).data if live else None

    def get_entities(self, doc: Document) -> list[str]:
        return sorted({m.entity.symbol for m in doc.mentions.all()})


class SentimentMentionSerializer(serializers.Serializer):
    symbol = serializers.CharField(source="entity.symbol")
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    surface = serializers.CharField()
    how = serializers.CharField()


class EntityScoreSerializer(serializers.Serializer):
    symbol = serializers.CharField(source="entity.symbol")
    model_version = serializers.CharField()
    label = serializers.CharField()
    value = serializers.FloatField()
    probabilities = serializers.DictField(child=serializers.FloatField())
    live = serializers.BooleanField()


class DocumentDetailSerializer(DocumentOutputSerializer):
    scores = SentimentScoreSerializer(many=True, help_text="Every version's score, newest first.")
    mentions = SentimentMentionSerializer(many=True)
    entity_scores = EntityScoreSerializer(many=True)

    class Meta(DocumentOutputSerializer.Meta):
        fields = (*DocumentOutputSerializer.Meta.fields, "meta", "scores", "mentions", "entity_scores")
        read_only_fields = fields


# --- entities, watchlists


class EntityOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Entity
        fields = ("symbol", "name", "aliases", "exchange", "active", "created_at", "updated_at")
        read_only_fields = fields


class EntityInputSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=16, help_text="AAPL, BRK.B; '$aapl' is taken as AAPL.")
    name = serializers.CharField(max_length=200)
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list, max_length=20
    )
    exchange = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    active = serializers.BooleanField(default=True, help_text="Inactive entities are not linked in new documents.")


class EntityUpdateSerializer(EntityInputSerializer):
    symbol = serializers.CharField(max_length=16, required=False)
    name = serializers.CharField(max_length=200, required=False)
    aliases = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=20)
    exchange = serializers.CharField(max_length=20, required=False, allow_blank=True)
    active = serializers.BooleanField(required=False)


class WatchlistOutputSerializer(serializers.ModelSerializer):
    entities = serializers.SlugRelatedField(slug_field="symbol", many=True, read_only=True)

    class Meta:
        model = Watchlist
        fields = ("id", "name", "entities", "created_at")
        read_only_fields = fields


class WatchlistInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    entities = serializers.ListField(
        child=serializers.CharField(max_length=16),
        default=list,
        max_length=1000,
        help_text="Symbols of entities on the watchlist.",
    )


class WatchlistUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    entities = serializers.ListField(child=serializers.CharField(max_length=16), required=False, max_length=1000)


# --- series, prices, rescoring


class SeriesQuerySerializer(serializers.Serializer):
    width = serializers.ChoiceField(choices=WIDTH_CHOICES, default=3600, help_text="Bucket width in seconds.")
    since = serializers.DateTimeField(required=False, help_text="Default: 168 buckets before until.")
    until = serializers.DateTimeField(required=False, help_text="Default: now.")
    basis = serializers.CharField(
        default=SeriesBucket.LIVE,
        max_length=120,
        help_text="'live' (scores on arrival) or a model version (a rescoring).",
    )
    rolling = serializers.IntegerField(
        required=False, min_value=1, max_value=500, help_text="Add the volume-weighted mean over the last N buckets."
    )


class SeriesBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    volume = serializers.IntegerField()
    mean = serializers.FloatField(allow_null=True, help_text="Mean of p(positive) - p(negative); null when empty.")
    share_positive = serializers.FloatField(allow_null=True)
    share_negative = serializers.FloatField(allow_null=True)
    share_neutral = serializers.FloatField(allow_null=True)
    rolling_mean = serializers.FloatField(
        allow_null=True,
        help_text="Over the last `rolling` buckets; null without `rolling` or when the window is empty.",
    )
    rolling_volume = serializers.IntegerField(
        allow_null=True, help_text="Mentions in the window; null without `rolling`."
    )


class SeriesOutputSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    basis = serializers.CharField()
    width = serializers.IntegerField()
    rolling = serializers.IntegerField(allow_null=True)
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    volume = serializers.IntegerField()
    buckets = SeriesBucketSerializer(many=True)


class PriceQuerySerializer(serializers.Serializer):
    since = serializers.DateField(required=False)
    until = serializers.DateField(required=False)


class PriceOutputSerializer(serializers.Serializer):
    date = serializers.DateField()
    open = serializers.FloatField(allow_null=True)
    close = serializers.FloatField()
    adj_close = serializers.FloatField(allow_null=True)
    volume = serializers.FloatField(allow_null=True)


class PriceImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV: symbol,date,close required; open,adj_close,volume optional.")


class PriceImportOutputSerializer(serializers.Serializer):
    stored = serializers.IntegerField()
    symbols = serializers.ListField(child=serializers.CharField())
    unknown_symbols = serializers.ListField(child=serializers.CharField())
    rejected = serializers.IntegerField()
    line_errors = SentimentLineErrorSerializer(many=True)


class RescoreInputSerializer(serializers.Serializer):
    version = serializers.CharField(max_length=120, help_text="A sentiment model version (see /api/mlops/versions/).")


class RescoreOutputSerializer(serializers.Serializer):
    queued = serializers.CharField()
    version = serializers.CharField()
    documents = serializers.IntegerField(help_text="Documents it will score.")
