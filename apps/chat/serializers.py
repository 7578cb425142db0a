"""Input and output shapes of the knowledge-base API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from apps.chat.models import Article, KbImport
from apps.chat.services.articles import TAG_MAX_CHARS, TAGS_MAX, TITLE_MAX


class ArticleOutputSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    updated_by = serializers.CharField(source="updated_by.username", default=None, read_only=True)
    tags = serializers.ListField(child=serializers.CharField())
    indexed = serializers.SerializerMethodField(help_text="The passages in the search index match this text.")

    class Meta:
        model = Article
        fields = (
            "id",
            "title",
            "body",
            "tags",
            "published",
            "source_format",
            "source_filename",
            "external_id",
            "indexed",
            "created_by",
            "updated_by",
            "created_at",
            "updated_at",
        )

    def get_indexed(self, article: Article) -> bool:
        from apps.chat.services.index import article_text_hash

        return article.indexed_hash == article_text_hash(article)


class ArticleInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=TITLE_MAX)
    body = serializers.CharField(
        max_length=settings.TRELLIS_KB_MAX_BODY_CHARS,
        allow_blank=True,
        required=False,
        default="",
        trim_whitespace=False,
        help_text="Markdown; raw HTML shows as text.",
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=TAG_MAX_CHARS), max_length=TAGS_MAX, required=False, default=list
    )
    published = serializers.BooleanField(required=False, default=False)


class ArticleFilterSerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="Words of the title.")
    tag = serializers.CharField(required=False, allow_blank=True, max_length=TAG_MAX_CHARS)
    published = serializers.BooleanField(required=False, allow_null=True, default=None)


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=500, help_text="A question or some words, in plain language.")
    k = serializers.IntegerField(min_value=1, max_value=settings.TRELLIS_KB_MAX_K, default=5)
    drafts = serializers.BooleanField(default=False, help_text="Also search draft (unpublished) articles.")


class PassageSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    article_id = serializers.IntegerField()
    article_title = serializers.CharField()
    heading = serializers.CharField()
    text = serializers.CharField()
    snippet = serializers.CharField()
    score = serializers.FloatField(help_text="Cosine similarity of query and passage, -1..1.")
    published = serializers.BooleanField()
    tags = serializers.ListField(child=serializers.CharField())


class SearchOutputSerializer(serializers.Serializer):
    query = serializers.CharField()
    results = PassageSerializer(many=True)


class KbImportInputSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(), allow_empty=False, help_text="One or more .md, .html, .json or .csv files."
    )
    publish = serializers.BooleanField(
        required=False, default=False, help_text="Publish the items that do not say themselves."
    )


class ReportEntrySerializer(serializers.Serializer):
    file = serializers.CharField()
    line = serializers.IntegerField(required=False)
    item = serializers.IntegerField(required=False, help_text="1-based position in a JSON list.")
    title = serializers.CharField(allow_blank=True)
    outcome = serializers.ChoiceField(choices=["created", "updated", "unchanged", "rejected"])
    article_id = serializers.IntegerField(required=False)
    error = serializers.CharField(required=False)


class KbImportOutputSerializer(serializers.ModelSerializer):
    report = ReportEntrySerializer(many=True)

    class Meta:
        model = KbImport
        fields = (
            "id",
            "filenames",
            "publish",
            "total",
            "created",
            "updated",
            "unchanged",
            "rejected",
            "report",
            "created_at",
        )


class KbTaskQueuedSerializer(serializers.Serializer):
    queued = serializers.BooleanField()
