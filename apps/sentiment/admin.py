from django.contrib import admin

from apps.sentiment.models import Document, Entity, EntityScore, Mention, Price, Score, SeriesBucket, Source, Watchlist


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "enabled",
        "consecutive_failures",
        "last_success_at",
        "next_poll_at",
        "documents_ingested",
    )
    list_filter = ("kind", "enabled")
    search_fields = ("name", "url")
    readonly_fields = (
        "etag",
        "last_modified",
        "last_polled_at",
        "last_success_at",
        "consecutive_failures",
        "last_error",
        "documents_ingested",
        "created_at",
    )


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    """Read-mostly: a document's text is its identity (content_hash); edit by ingesting anew."""

    list_display = ("id", "source", "title", "published_at", "ingested_at", "language")
    list_filter = ("source", "language")
    search_fields = ("title", "text", "external_id")
    readonly_fields = ("content_hash", "text", "ingested_at")
    raw_id_fields = ("source",)


@admin.register(Entity)
class EntityAdmin(admin.ModelAdmin):
    list_display = ("symbol", "name", "exchange", "active", "updated_at")
    list_filter = ("active", "exchange")
    search_fields = ("symbol", "name")


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    """Scores are written by the scoring task only (exactly once per document and version)."""

    list_display = ("document", "model_version", "label", "value", "live", "abstained", "scored_at")
    list_filter = ("model_version", "label", "live")
    raw_id_fields = ("document",)

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(EntityScore)
class EntityScoreAdmin(admin.ModelAdmin):
    list_display = ("document", "entity", "model_version", "label", "value", "live", "published_at")
    list_filter = ("model_version", "label", "live")
    raw_id_fields = ("document", "entity")

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SeriesBucket)
class SeriesBucketAdmin(admin.ModelAdmin):
    """Aggregates the scoring transaction keeps; changing them here would disagree with the scores."""

    list_display = ("entity", "basis", "width_s", "start", "n", "sum_value")
    list_filter = ("basis", "width_s")
    raw_id_fields = ("entity",)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


admin.site.register(Watchlist)
admin.site.register(Mention)
admin.site.register(Price)
