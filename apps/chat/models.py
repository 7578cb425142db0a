"""Knowledge base (articles, passages, imports) and conversations (widget routes, messages, feedback)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Article(models.Model):
    class SourceFormat(models.TextChoices):
        EDITOR = "editor", "Written here"
        MARKDOWN = "markdown", "Markdown file"
        HTML = "html", "HTML file"
        JSON = "json", "JSON"
        CSV = "csv", "CSV"
        DEMO = "demo", "Demo data"

    title = models.CharField(max_length=300)
    body = models.TextField(blank=True, default="")  # Markdown source; rendered through services.rendering
    tags = models.JSONField(default=list, blank=True)  # ["refunds", "membership"]
    published = models.BooleanField(default=False, db_index=True)
    source_format = models.CharField(max_length=10, choices=SourceFormat.choices, default=SourceFormat.EDITOR)
    source_filename = models.CharField(max_length=255, blank=True, default="")
    # The importer's own id (a CMS key, "abcd:product_defect:return_size"): unique when given.
    external_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    # sha256 of the text the passages were made from; the index task skips an article whose text
    # did not change (a publish toggle, a tag edit), and re-chunks it when it did.
    indexed_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    indexed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("title", "id")

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """One passage of an article: what the index holds (its id is the chunk's pk)."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    heading = models.CharField(max_length=500, blank=True, default="")  # "Returns > Gold members"
    text = models.TextField()
    char_start = models.PositiveIntegerField(default=0)  # span in article.body
    char_end = models.PositiveIntegerField(default=0)
    # float32 vector (L2-normalised) from the embedder, kept so that the index can be rebuilt
    # without embedding every passage again.
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("article_id", "ordinal")
        constraints = [models.UniqueConstraint(fields=("article", "ordinal"), name="chat_chunk_article_ordinal")]

    def __str__(self) -> str:
        return f"{self.article_id}#{self.ordinal}"


class KbImport(models.Model):
    """One upload of one or more files; ``report`` says what became of each item."""

    filenames = models.JSONField(default=list)
    publish = models.BooleanField(default=False)  # for items that do not say themselves
    total = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    # [{"file": "faq.csv", "line": 7, "title": "...", "outcome": "rejected", "error": "title: empty"}],
    # the first REPORT_MAX items; a JSON item has "item" (1-based) instead of "line".
    report = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"kb import {self.pk} ({', '.join(self.filenames)[:80]})"


# --- Conversations: the widget's customers, the assistant's replies, the agents behind it ---------


class WidgetRoute(models.Model):
    """One place the widget is embedded (a site, a brand): who may embed it and how it looks.

    ``key`` is public (``<script data-route="shop">``). A socket or REST call from a browser
    whose Origin is not in ``allowed_origins`` (nor one of this site's own hosts) is refused.
    """

    key = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    allowed_origins = models.JSONField(default=list, blank=True)  # ["https://shop.example.com"]
    title = models.CharField(max_length=100, default="Customer service")
    greeting = models.CharField(
        max_length=500, default="Hi! Ask me anything about your order, returns or your account."
    )
    brand_colour = models.CharField(max_length=7, default="#2563eb")  # #RRGGBB
    # intents that always go to a person (e.g. "complaint"), on top of the pipeline's own reasons
    handoff_intents = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("key",)

    def __str__(self) -> str:
        return self.key


class Conversation(models.Model):
    """A customer's chat. Anonymous visitors hold a signed token naming ``public_id`` and
    ``visitor_id``; signed-in customers are ``customer`` and see their history."""

    class Status(models.TextChoices):
        BOT = "bot", "Assistant answering"
        WAITING = "waiting", "Waiting for a person"
        AGENT = "agent", "With an agent"
        CLOSED = "closed", "Closed"

    class HandoffReason(models.TextChoices):
        ASKED = "asked", "Customer asked for a person"
        OUT_OF_SCOPE = "out_of_scope", "Out of scope"
        LOW_RETRIEVAL = "low_retrieval", "Not in the knowledge base"
        ANGRY = "angry", "Upset customer"
        INTENT = "intent", "Configured intent"
        AGENT = "agent", "Agent took over"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)  # in URLs and tokens
    visitor_id = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)
    route = models.ForeignKey(
        WidgetRoute, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="chat_conversations"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOT, db_index=True)
    handoff_reason = models.CharField(max_length=20, choices=HandoffReason.choices, blank=True, default="")
    handoff_at = models.DateTimeField(null=True, blank=True)  # when it joined the agents' queue
    priority = models.SmallIntegerField(default=0)  # higher first in the queue (e.g. an upset customer)
    assigned_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="chat_assigned"
    )
    origin = models.CharField(max_length=200, blank=True, default="")  # the embedding page's Origin
    rating = models.PositiveSmallIntegerField(null=True, blank=True)  # 1-5, given when closed
    rating_comment = models.CharField(max_length=1000, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_activity_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-last_activity_at", "-id")
        indexes = [models.Index(fields=("status", "-priority", "handoff_at"), name="chat_conv_queue")]

    def __str__(self) -> str:
        return f"conversation {self.public_id}"


class Message(models.Model):
    """One turn. ``text`` is stored redacted (personal data replaced by ``<EMAIL>``-style tags);
    the original is never stored."""

    class Role(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        ASSISTANT = "assistant", "Assistant"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"  # "An agent joined", "Conversation closed"

    class Decision(models.TextChoices):
        ANSWER = "answer", "Answered"
        CLARIFY = "clarify", "Asked to clarify"
        HANDOFF = "handoff", "Handed off"
        UNKNOWN = "unknown", "Did not know"

    class Generator(models.TextChoices):
        LM = "lm", "Generated"
        EXTRACTIVE = "extractive", "Passage sentences"
        TEMPLATE = "template", "Fixed text"
        AGENT = "agent", "Written by an agent"
        DRAFT = "draft", "Agent-assist draft, sent as is"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField(blank=True, default="")
    # {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}: what redaction replaced (counts, never the values)
    redactions = models.JSONField(default=dict, blank=True)
    # [{"chunk_id": 12, "article_id": 3, "title": "...", "heading": "...", "score": 0.61}], best first
    sources = models.JSONField(default=list, blank=True)
    intent = models.CharField(max_length=100, blank=True, default="")
    confidence = models.FloatField(null=True, blank=True)
    abstained = models.BooleanField(default=False)  # the intent model said "none of mine"
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True, default="")
    generator = models.CharField(max_length=10, choices=Generator.choices, blank=True, default="")
    grounded = models.BooleanField(null=True, blank=True)  # the generated text passed the grounding check
    grounding_score = models.FloatField(null=True, blank=True)
    completed = models.BooleanField(default=True)  # False: the reply stopped early (customer left, error)
    # {"retrieve_ms": 12, "classify_ms": 8, "first_token_ms": 240, "total_ms": 1900}
    timings = models.JSONField(default=dict, blank=True)
    model_versions = models.JSONField(default=dict, blank=True)  # {"chat-lm": "...", "intent": "..."}
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # the widget's own id for a customer message: a resend after a reconnect is not stored twice
    client_id = models.CharField(max_length=64, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [
            models.UniqueConstraint(fields=("conversation", "client_id"), name="chat_message_client_id"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:40]}"


class Feedback(models.Model):
    """A customer's thumbs on an assistant reply (one per message: a second click replaces it)."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    helpful = models.BooleanField()
    comment = models.CharField(max_length=1000, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{'+' if self.helpful else '-'} on {self.message_id}"


class Correction(models.Model):
    """An agent's better answer to a customer message the assistant got wrong (training data)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="corrections")  # the assistant's reply
    text = models.TextField()
    intent = models.CharField(max_length=100, blank=True, default="")  # the right intent, when the agent says
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"correction of {self.message_id}"


class SavedReply(models.Model):
    """A canned answer agents insert in the console (``/refund`` -> the text)."""

    shortcut = models.SlugField(max_length=50, unique=True)
    title = models.CharField(max_length=200)
    text = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("shortcut",)

    def __str__(self) -> str:
        return self.shortcut
