"""Widget routes in the Django admin: the same checks as /chat/routes/ (origins normalised and
validated one by one, colour #RRGGBB, intent names) and the same audit record."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from apps.audit.services import audit_record
from apps.chat.models import WidgetRoute
from apps.chat.services.routes import AUDIT_ACTION, COLOUR_PATTERN, intents_parse, origins_parse


class WidgetRouteAdminForm(forms.ModelForm):
    class Meta:
        model = WidgetRoute
        fields = ("key", "name", "allowed_origins", "title", "greeting", "brand_colour", "handoff_intents", "active")

    def clean_allowed_origins(self) -> list[str]:
        value = self.cleaned_data.get("allowed_origins") or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError('a JSON list of origins, e.g. ["https://shop.example.com"]')
        return origins_parse("\n".join(value))

    def clean_handoff_intents(self) -> list[str]:
        value = self.cleaned_data.get("handoff_intents") or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError('a JSON list of intent names, e.g. ["complaint"]')
        return intents_parse("\n".join(value))

    def clean_brand_colour(self) -> str:
        value = self.cleaned_data.get("brand_colour", "")
        if not COLOUR_PATTERN.match(value):
            raise ValidationError("a colour is #RRGGBB, e.g. #2563eb")
        return value.lower()


@admin.register(WidgetRoute)
class WidgetRouteAdmin(admin.ModelAdmin):
    form = WidgetRouteAdminForm
    list_display = ("key", "name", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("key", "name")

    def save_model(self, request: Any, obj: WidgetRoute, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if form.changed_data:
            audit_record(
                actor=request.user,
                action=AUDIT_ACTION,
                target=obj,
                request=request,
                summary=f"{'changed' if change else 'created'} widget route {obj.key} (admin): "
                f"{', '.join(form.changed_data)}",
                details={name: form.cleaned_data.get(name) for name in form.changed_data},
            )
