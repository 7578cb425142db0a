"""Cross-origin requests from the chat widget: django-cors-headers asks this receiver whether
CORS is on for a request, and answers with the headers only when it says yes.

Yes only for the widget's REST paths (``TRELLIS_CHAT_CORS_URLS_REGEX``: start a conversation,
read one) and only for an Origin that an active widget route lists. Every other path, and
every other origin, gets no CORS headers, so the browser keeps the response from the page.
The allowed origins are cached for a few seconds (``routes.CORS_ORIGINS_CACHE_S``); a route
saved in this process clears the cache.
"""

from __future__ import annotations

import re
from typing import Any

from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.chat.models import WidgetRoute
from apps.chat.services.routes import cors_origin_allowed, cors_origins_reset


@receiver(check_request_enabled)
def chat_widget_origin_enabled(sender: Any, request: Any, **kwargs: Any) -> bool:
    if not re.match(settings.TRELLIS_CHAT_CORS_URLS_REGEX, request.path_info):
        return False
    return cors_origin_allowed(request.headers.get("Origin", ""))


@receiver(post_save, sender=WidgetRoute)
@receiver(post_delete, sender=WidgetRoute)
def widget_route_changed(sender: type[WidgetRoute], **kwargs: Any) -> None:
    cors_origins_reset()  # this process answers with the new origins at once
