from django.contrib import admin

from apps.recommend.models import (
    ABTest,
    CatalogueImport,
    EvaluationRun,
    Event,
    Impression,
    Item,
    RecommenderConfig,
    WidgetKey,
)


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    """Saves and deletes here reach the index through the signals (apps/recommend/signals.py)."""

    list_display = ("external_id", "title", "category", "price", "available", "embedded_at")
    list_filter = ("available", "category")
    search_fields = ("external_id", "title")
    readonly_fields = ("embedded_at", "created_at", "updated_at")


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "kind", "user_key", "session_key", "item", "ts")
    list_filter = ("kind",)
    search_fields = ("event_id", "user_key", "session_key")
    raw_id_fields = ("item",)


@admin.register(Impression)
class ImpressionAdmin(admin.ModelAdmin):
    list_display = ("impression_id", "surface", "user_key", "item", "position", "variant", "created_at", "clicked_at")
    list_filter = ("surface",)
    raw_id_fields = ("item", "ab_test")


admin.site.register(RecommenderConfig)
admin.site.register(ABTest)
admin.site.register(CatalogueImport)
admin.site.register(EvaluationRun)
admin.site.register(WidgetKey)
