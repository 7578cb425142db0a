"""Catalogue, behaviour events, online metrics, A/B tests, offline evaluations, widget keys."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

# Item and user keys travel in URLs (/items/<id>/similar/): letters, digits and . _ : - only.
KEY_PATTERN = r"^[A-Za-z0-9._:\-]{1,100}$"
key_validator = RegexValidator(KEY_PATTERN, "Use 1-100 letters, digits, '.', '_', ':' or '-'.")


class Item(models.Model):
    external_id = models.CharField(max_length=100, unique=True, validators=[key_validator])
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True, default="")
    category = models.CharField(max_length=100, blank=True, default="", db_index=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    available = models.BooleanField(default=True)
    attributes = models.JSONField(default=dict, blank=True)
    # float32 vector of the item's text from the embedder (L2-normalised), kept so that the
    # index can be rebuilt or updated without embedding the whole catalogue again.
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    embedded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("external_id",)

    def __str__(self) -> str:
        return f"{self.external_id} {self.title}"

    @property
    def text(self) -> str:
        """What the embedder reads: title, category and description."""
        return " . ".join(part for part in (self.title, self.category, self.description) if part)


class EventKind(models.TextChoices):
    VIEW = "view", "View"
    CLICK = "click", "Click"
    CART = "cart", "Add to cart"
    PURCHASE = "purchase", "Purchase"
    RATING = "rating", "Rating"


class Event(models.Model):
    """One behaviour event. ``event_id`` is the sender's id: sending it again changes nothing."""

    event_id = models.CharField(max_length=100, unique=True)
    user_key = models.CharField(max_length=100, blank=True, default="", db_index=True)
    session_key = models.CharField(max_length=100, blank=True, default="", db_index=True)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=EventKind.choices)
    value = models.FloatField(default=1.0)  # quantity of a purchase, stars of a rating
    ts = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-ts", "-id")
        indexes = [models.Index(fields=("user_key", "-ts"), name="recommend_event_user_ts")]

    def __str__(self) -> str:
        return f"{self.kind} {self.item_id} by {self.user_key or self.session_key}"


class Surface(models.TextChoices):
    USER = "user", "Recommendations for a user"
    SIMILAR = "similar", "Similar items"
    WIDGET = "widget", "Widget"


class Impression(models.Model):
    """One item shown in one recommendation list; ``clicked_at`` is set when it is clicked."""

    impression_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user_key = models.CharField(max_length=100, blank=True, default="", db_index=True)
    session_key = models.CharField(max_length=100, blank=True, default="")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="impressions")
    position = models.PositiveSmallIntegerField()
    surface = models.CharField(max_length=10, choices=Surface.choices)
    ab_test = models.ForeignKey("ABTest", null=True, blank=True, on_delete=models.CASCADE, related_name="impressions")
    variant = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    clicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.item_id} at {self.position} for {self.user_key or self.session_key}"


class RecommenderConfig(models.Model):
    """A named blend: weights per recommender, diversity. ``default`` serves when no test runs."""

    DEFAULT_NAME = "default"

    name = models.CharField(max_length=40, unique=True)
    weights = models.JSONField(default=dict)  # {"content": 1.0, "cooccurrence": 1.0, "als": 1.0, "popularity": 0.3}
    diversity = models.FloatField(default=0.0)  # MMR trade-off: 0 = pure relevance
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return f"{self.name} {self.weights}"


class ABTest(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"

    name = models.CharField(max_length=100)
    # [{"name": "A", "weights": {...}}, {"name": "B", "weights": {...}}]: two blends.
    variants = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING, db_index=True)
    winner = models.CharField(max_length=40, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [models.UniqueConstraint(fields=("status",), condition=models.Q(status="running"),
                                               name="recommend_one_running_abtest")]

    def __str__(self) -> str:
        return f"{self.name} [{self.status}]"

    def variant_names(self) -> list[str]:
        return [v["name"] for v in self.variants]


class BackgroundRun(models.Model):
    """Shared columns of the import and evaluation runs a Celery task carries out."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)  # 0..1
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ("-created_at", "-id")

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class CatalogueImport(BackgroundRun):
    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON lines"

    file = models.FileField(upload_to="recommend/imports/%Y/%m/")
    filename = models.CharField(max_length=255, blank=True, default="")
    format = models.CharField(max_length=5, choices=Format.choices)
    total_rows = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    # [{"line": 7, "error": "price: not a number"}], the first REPORT_MAX rows with a problem.
    line_errors = models.JSONField(default=list, blank=True)
    rejected = models.PositiveIntegerField(default=0)

    class Meta(BackgroundRun.Meta):
        pass

    def __str__(self) -> str:
        return f"import {self.pk} {self.filename} [{self.status}]"


class EvaluationRun(BackgroundRun):
    params = models.JSONField(default=dict)  # {"cutoff": "2011-10-01", "k": 10, "kinds": ["purchase"]}
    results = models.JSONField(default=dict, blank=True)

    class Meta(BackgroundRun.Meta):
        pass

    def __str__(self) -> str:
        return f"evaluation {self.pk} [{self.status}]"


class WidgetKey(models.Model):
    """A public key a shop puts in its widget's script tag: read-only recommendations, from
    the listed origins only. Personal recommendations need ``user`` signed with the secret
    (HMAC-SHA256, computed on the shop's server); without it the widget gets session-based
    ones, so knowing a customer's id does not reveal what they bought."""

    name = models.CharField(max_length=100)
    public_key = models.CharField(max_length=64, unique=True)
    signing_secret = models.CharField(max_length=64)
    allowed_origins = models.JSONField(default=list)  # ["https://shop.example"]
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.name} ({self.public_key[:10]}…)"
