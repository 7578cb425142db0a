"""Financial sentiment monitoring: sources, documents, scores, entities, series, alerts.

Data flow: a ``Source`` (feed, upload, push API, replay) -> ``Document`` (deduplicated by the
hash of its normalised text) -> scoring task -> ``Score`` per (document, model version) and
``EntityScore`` per (document, entity, model version) -> ``SeriesBucket`` aggregates -> alert
rules -> ``Alert`` -> ``AlertDelivery`` (socket, email, webhook).

Scores are never overwritten: rescoring with a new version adds rows. ``Score.live`` marks the
score a document got when it arrived ("as seen then"); the series keep one basis for the live
scores (``SeriesBucket.LIVE``) and one per rescored version ("as scored now").
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9.\-]{0,14}$"
symbol_validator = RegexValidator(SYMBOL_PATTERN, "Use 1-15 upper-case letters, digits, '.' or '-' (e.g. AAPL, BRK.B).")


class Entity(models.Model):
    """A company on the watchlist. Aliases are extra names the linker matches (case-insensitive)."""

    symbol = models.CharField(max_length=15, unique=True, validators=[symbol_validator])
    name = models.CharField(max_length=200)
    aliases = models.JSONField(default=list, blank=True)
    exchange = models.CharField(max_length=20, blank=True, default="")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("symbol",)
        verbose_name_plural = "entities"

    def __str__(self) -> str:
        return f"{self.symbol} ({self.name})"


class Watchlist(models.Model):
    """A named group of entities; alert rules can watch every entity of one."""

    name = models.CharField(max_length=100, unique=True)
    entities = models.ManyToManyField(Entity, related_name="watchlists", blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Source(models.Model):
    class Kind(models.TextChoices):
        FEED = "feed", "RSS/Atom feed"
        UPLOAD = "upload", "File upload"
        PUSH = "push", "Push API"
        REPLAY = "replay", "Dataset replay"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    url = models.URLField(max_length=1000, blank=True, default="")  # feeds only
    enabled = models.BooleanField(default=True)
    poll_interval_s = models.PositiveIntegerField(default=300)
    # Conditional requests: what the feed answered last time.
    etag = models.CharField(max_length=500, blank=True, default="")
    last_modified = models.CharField(max_length=100, blank=True, default="")
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    consecutive_failures = models.PositiveIntegerField(default=0)  # drives the back-off
    last_error = models.TextField(blank=True, default="")
    documents_ingested = models.PositiveBigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @property
    def healthy(self) -> bool:
        return self.consecutive_failures == 0


class Document(models.Model):
    """One piece of text. ``content_hash`` is the sha256 of the normalised text: the same text
    from two sources (or pushed twice) is one document."""

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="documents")
    external_id = models.CharField(max_length=300, blank=True, default="")
    content_hash = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=500, blank=True, default="")
    text = models.TextField()
    url = models.URLField(max_length=1000, blank=True, default="")
    language = models.CharField(max_length=10, blank=True, default="")
    published_at = models.DateTimeField(db_index=True)
    ingested_at = models.DateTimeField(auto_now_add=True, db_index=True)
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-published_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("source", "external_id"), condition=~models.Q(external_id=""),
                                    name="sentiment_document_source_external_id"),
        ]

    def __str__(self) -> str:
        return (self.title or self.text)[:80]


class Label(models.TextChoices):
    NEGATIVE = "negative", "Negative"
    NEUTRAL = "neutral", "Neutral"
    POSITIVE = "positive", "Positive"


class Score(models.Model):
    """The document-level score of one model version. One row per (document, version), ever."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="scores")
    model_version = models.CharField(max_length=120, db_index=True)  # ModelVersion.version (manifest id)
    label = models.CharField(max_length=10, choices=Label.choices)
    probabilities = models.JSONField(default=dict)  # calibrated, per label
    value = models.FloatField()  # p(positive) - p(negative), in [-1, 1]
    abstained = models.BooleanField(default=False)
    live = models.BooleanField(default=False)  # the score given on arrival ("as seen then")
    scored_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-scored_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("document", "model_version"), name="sentiment_score_once_per_version"),
        ]

    def __str__(self) -> str:
        return f"{self.label} {self.value:+.2f} by {self.model_version} (document {self.document_id})"


class Mention(models.Model):
    """Where a document names a watched entity (character offsets into ``Document.text``)."""

    class How(models.TextChoices):
        CASHTAG = "cashtag", "Cashtag"
        EXCHANGE = "exchange", "Exchange prefix"
        SYMBOL = "symbol", "Symbol"
        NAME = "name", "Name"
        ALIAS = "alias", "Alias"

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="mentions")
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="mentions")
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    surface = models.CharField(max_length=200)
    how = models.CharField(max_length=10, choices=How.choices)

    class Meta:
        ordering = ("document", "start")
        constraints = [
            models.UniqueConstraint(fields=("document", "entity", "start"), name="sentiment_mention_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.surface!r} -> entity {self.entity_id} ({self.how})"


class EntityScore(models.Model):
    """The sentiment towards one entity in one document, by one model version (entity-level:
    "X beats, Y misses" gives X and Y their own scores)."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="entity_scores")
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="scores")
    model_version = models.CharField(max_length=120)
    label = models.CharField(max_length=10, choices=Label.choices)
    probabilities = models.JSONField(default=dict)
    value = models.FloatField()
    live = models.BooleanField(default=False)
    published_at = models.DateTimeField()  # the document's, copied for series queries

    class Meta:
        ordering = ("-published_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("document", "entity", "model_version"),
                                    name="sentiment_entity_score_once_per_version"),
        ]
        indexes = [models.Index(fields=("entity", "model_version", "published_at"))]

    def __str__(self) -> str:
        return f"entity {self.entity_id}: {self.label} {self.value:+.2f} by {self.model_version}"


class SeriesBucket(models.Model):
    """Per-entity aggregate over one time bucket, kept up to date as scores arrive.

    ``basis`` is ``LIVE`` for the scores documents got on arrival, or a model version for a
    rescoring of the history with that version."""

    LIVE = "live"

    class Width(models.IntegerChoices):
        MIN15 = 900, "15 minutes"
        HOUR = 3600, "1 hour"
        DAY = 86400, "1 day"

    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="buckets")
    basis = models.CharField(max_length=120, default=LIVE)
    width_s = models.PositiveIntegerField(choices=Width.choices)
    start = models.DateTimeField()
    n = models.PositiveIntegerField(default=0)
    sum_value = models.FloatField(default=0.0)
    n_positive = models.PositiveIntegerField(default=0)
    n_negative = models.PositiveIntegerField(default=0)
    n_neutral = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("entity", "width_s", "start")
        constraints = [
            models.UniqueConstraint(fields=("entity", "basis", "width_s", "start"), name="sentiment_bucket_unique"),
        ]

    def __str__(self) -> str:
        return f"entity {self.entity_id} {self.basis} {self.width_s}s @ {self.start:%Y-%m-%d %H:%M}: n={self.n}"

    @property
    def mean(self) -> float | None:
        return self.sum_value / self.n if self.n else None


class Price(models.Model):
    """Daily prices of an entity (for charts and the backtest)."""

    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="prices")
    date = models.DateField()
    open = models.FloatField(null=True, blank=True)
    close = models.FloatField()
    adj_close = models.FloatField(null=True, blank=True)
    volume = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ("entity", "date")
        constraints = [models.UniqueConstraint(fields=("entity", "date"), name="sentiment_price_unique")]

    def __str__(self) -> str:
        return f"entity {self.entity_id} {self.date}: {self.close}"


class AlertRule(models.Model):
    class Condition(models.TextChoices):
        LEVEL_ABOVE = "level_above", "Mean sentiment above"
        LEVEL_BELOW = "level_below", "Mean sentiment below"
        CHANGE = "change", "Change over a window"
        VOLUME_SPIKE = "volume_spike", "Volume spike (z-score)"

    name = models.CharField(max_length=200)
    entity = models.ForeignKey(Entity, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules")
    watchlist = models.ForeignKey(Watchlist, null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="alert_rules")
    condition = models.CharField(max_length=20, choices=Condition.choices)
    threshold = models.FloatField()  # level, absolute change, or z-score
    width_s = models.PositiveIntegerField(choices=SeriesBucket.Width.choices, default=SeriesBucket.Width.HOUR)
    window = models.PositiveIntegerField(default=1)  # buckets the condition looks at
    baseline = models.PositiveIntegerField(default=24)  # buckets before the window (volume spike)
    min_volume = models.PositiveIntegerField(default=3)
    cooldown_s = models.PositiveIntegerField(default=3600)
    notify_email = models.TextField(blank=True, default="")  # comma-separated addresses
    webhook_url = models.URLField(max_length=1000, blank=True, default="")
    webhook_secret = models.CharField(max_length=100, blank=True, default="")  # HMAC-SHA256 key
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name", "id")
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(entity__isnull=False, watchlist__isnull=True)
                           | models.Q(entity__isnull=True, watchlist__isnull=False)),
                name="sentiment_alert_rule_entity_xor_watchlist",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="alerts")
    fired_at = models.DateTimeField(auto_now_add=True, db_index=True)
    value = models.FloatField()
    threshold = models.FloatField()
    message = models.CharField(max_length=500)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    documents = models.ManyToManyField(Document, related_name="alerts", blank=True)  # what triggered it
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.OPEN, db_index=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-fired_at", "-id")
        indexes = [models.Index(fields=("rule", "entity", "fired_at"))]  # cooldown lookups

    def __str__(self) -> str:
        return self.message


class AlertDelivery(models.Model):
    class Channel(models.TextChoices):
        SOCKET = "socket", "Dashboard (live)"
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (retries exhausted)"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    target = models.CharField(max_length=1000, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("alert", "channel")

    def __str__(self) -> str:
        return f"alert {self.alert_id} via {self.channel}: {self.status}"


class Correction(models.Model):
    """An analyst's label for a document (or for one entity in it): training data for the next
    sentiment model."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="corrections")
    entity = models.ForeignKey(Entity, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    label = models.CharField(max_length=10, choices=Label.choices)
    previous_label = models.CharField(max_length=10, blank=True, default="")
    model_version = models.CharField(max_length=120, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("document", "entity", "created_by"), name="sentiment_correction_once"),
        ]

    def __str__(self) -> str:
        return f"document {self.document_id}: {self.previous_label or '?'} -> {self.label}"


class BacktestRun(models.Model):
    """A stored backtest: daily sentiment vs the next day's return, with naive baselines."""

    basis = models.CharField(max_length=120, default=SeriesBucket.LIVE)
    params = models.JSONField(default=dict)
    results = models.JSONField(default=dict)  # per symbol and pooled; see ml/sentiment/backtest.py
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"backtest {self.pk} ({self.basis}, {self.created_at:%Y-%m-%d %H:%M})"
