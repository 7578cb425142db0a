"""The widget-route form of ``/chat/routes/``: origins one per line, intents by comma.

The form only shapes input; ``apps.chat.services.routes`` validates and saves (the same
checks whether a route comes from this page, the admin or code).
"""

from __future__ import annotations

from django import forms

from apps.chat.models import WidgetRoute


class WidgetRouteForm(forms.Form):
    key = forms.SlugField(
        max_length=50, help_text='Public: the embed snippet names it (data-route="shop"). Letters, digits, - and _.'
    )
    name = forms.CharField(max_length=200, help_text="For you: which site or brand this is.")
    allowed_origins = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "https://shop.example.com"}),
        required=False,
        help_text="One per line, scheme://host[:port] (no path). Only pages on these origins can "
        "start a conversation or open its socket.",
    )
    title = forms.CharField(max_length=100, help_text="The panel's heading.")
    greeting = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))
    brand_colour = forms.CharField(
        max_length=7, widget=forms.TextInput(attrs={"type": "color"}), help_text="#RRGGBB: launcher and header."
    )
    handoff_intents = forms.CharField(
        required=False,
        help_text="Intents that always go to a person, separated by commas (e.g. complaint, contact_human_agent).",
    )
    active = forms.BooleanField(required=False, initial=True, help_text="Off: the widget refuses to start.")

    @classmethod
    def for_route(cls, route: WidgetRoute) -> WidgetRouteForm:
        return cls(
            initial={
                "key": route.key,
                "name": route.name,
                "allowed_origins": "\n".join(route.allowed_origins),
                "title": route.title,
                "greeting": route.greeting,
                "brand_colour": route.brand_colour,
                "handoff_intents": ", ".join(route.handoff_intents),
                "active": route.active,
            }
        )

    @classmethod
    def blank(cls) -> WidgetRouteForm:
        defaults = WidgetRoute()
        return cls(
            initial={
                "title": defaults.title,
                "greeting": defaults.greeting,
                "brand_colour": defaults.brand_colour,
                "active": True,
            }
        )
