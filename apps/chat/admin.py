from typing import Any

from django.contrib import admin

from apps.audit.services import audit_record
from apps.chat.admin_routes import WidgetRouteAdmin  # noqa: F401  (registers the widget routes' admin)
from apps.chat.models import Article, Chunk, Conversation, Correction, KbImport, Message, SavedReply


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ("ordinal", "heading", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    """Saves and deletes here reach the index through the signals (apps/chat/signals.py);
    publishing and deleting are audited as on the dashboard."""

    list_display = ("title", "published", "source_format", "external_id", "updated_at")
    list_filter = ("published", "source_format")
    search_fields = ("title", "external_id", "body")
    readonly_fields = ("indexed_at", "created_by", "updated_by", "created_at", "updated_at")
    fields = ("title", "body", "tags", "published", "external_id", "source_format", "source_filename", *readonly_fields)
    inlines = (ChunkInline,)

    def save_model(self, request: Any, obj: Article, form: Any, change: bool) -> None:
        obj.updated_by = request.user
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if "published" in form.changed_data or (not change and obj.published):
            action = "kb_article.publish" if obj.published else "kb_article.unpublish"
            audit_record(actor=request.user, action=action, target=obj, summary=obj.title, request=request)

    def delete_model(self, request: Any, obj: Article) -> None:
        audit_record(actor=request.user, action="kb_article.delete", target=obj, summary=obj.title, request=request)
        super().delete_model(request, obj)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for obj in queryset:
            audit_record(actor=request.user, action="kb_article.delete", target=obj, summary=obj.title, request=request)
        super().delete_queryset(request, queryset)


@admin.register(KbImport)
class KbImportAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "total", "created", "updated", "unchanged", "rejected")
    readonly_fields = (
        "filenames",
        "publish",
        "total",
        "created",
        "updated",
        "unchanged",
        "rejected",
        "report",
        "created_by",
        "created_at",
    )


# --- Conversations (read-only: what customers and agents said is a record, changed only through
# the services) and saved replies (edited here or on /chat/saved-replies/, audited either way).


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("created_at", "role", "text", "decision", "generator", "intent", "confidence", "completed")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(_ReadOnlyAdmin):
    list_display = (
        "public_id",
        "route",
        "status",
        "handoff_reason",
        "priority",
        "assigned_agent",
        "rating",
        "created_at",
    )
    list_filter = ("status", "handoff_reason", "route")
    search_fields = ("public_id", "messages__text")
    inlines = (MessageInline,)


@admin.register(Message)
class MessageAdmin(_ReadOnlyAdmin):
    list_display = (
        "id",
        "conversation",
        "role",
        "short_text",
        "decision",
        "generator",
        "intent",
        "completed",
        "created_at",
    )
    list_filter = ("role", "decision", "generator", "completed")
    search_fields = ("text", "intent")
    list_select_related = ("conversation",)

    @admin.display(description="text")
    def short_text(self, obj: Message) -> str:
        return obj.text[:80]


@admin.register(Correction)
class CorrectionAdmin(_ReadOnlyAdmin):
    list_display = ("id", "message", "intent", "agent", "created_at")
    search_fields = ("text", "intent")


@admin.register(SavedReply)
class SavedReplyAdmin(admin.ModelAdmin):
    list_display = ("shortcut", "title", "created_by", "created_at")
    search_fields = ("shortcut", "title", "text")
    readonly_fields = ("created_by", "created_at")

    def save_model(self, request: Any, obj: SavedReply, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        action = "chat_saved_reply.update" if change else "chat_saved_reply.create"
        audit_record(actor=request.user, action=action, target=obj, summary=f"/{obj.shortcut}", request=request)

    def delete_model(self, request: Any, obj: SavedReply) -> None:
        audit_record(
            actor=request.user,
            action="chat_saved_reply.delete",
            target=obj,
            summary=f"/{obj.shortcut}",
            request=request,
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for obj in queryset:
            audit_record(
                actor=request.user,
                action="chat_saved_reply.delete",
                target=obj,
                summary=f"/{obj.shortcut}",
                request=request,
            )
        super().delete_queryset(request, queryset)
