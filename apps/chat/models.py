"""Knowledge base: articles, their passages (chunks) with embeddings, and import runs."""

from __future__ import annotations

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
