"""Objects the access matrix (tests/core/test_access_matrix.py) needs for the widget pages: a
route to show and edit (the demo shop and the help pages are public)."""

from __future__ import annotations

from typing import Any

# For test_every_route_is_in_the_matrix: ids that resolve.
WIDGET_ROUTE_IDS: dict[str, Any] = {"chat_widget_route": 1}


def widget_access_objects() -> dict[str, Any]:
    from apps.chat.models import WidgetRoute

    route = WidgetRoute.objects.create(key="matrix-shop", name="Matrix shop", allowed_origins=["https://m.example"])
    return {"chat_widget_route": route.pk}


def widget_route_form(key: str) -> dict[str, str]:
    """A valid POST of the route form (``key`` must be new for a create)."""
    return {
        "key": key,
        "name": "Matrix route",
        "allowed_origins": "https://m.example",
        "title": "Help",
        "greeting": "Hi",
        "brand_colour": "#123456",
        "handoff_intents": "",
        "active": "on",
    }
