"""The Origin check of every WebSocket, with one exception: the widget's conversation socket.

``AllowedHostsOriginValidator`` accepts only pages of this site's own hosts, which is right for
the dashboard's sockets (the agents' queue included) but refuses the widget, which runs on the
customer's shop. For ``ws/chat/<uuid>/`` a page's Origin is accepted when it is one of our own
hosts or listed in the conversation's widget route (``routes.route_origin_allowed``); any
other Origin, or none, is refused with close code 4403. Every other path keeps the validator.
An unknown conversation passes here and gets the consumer's 4404.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlparse

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import AllowedHostsOriginValidator

from apps.chat.models import Conversation
from apps.chat.services.routes import route_origin_allowed

CLOSE_ORIGIN_REFUSED = 4403
WIDGET_PATH = re.compile(r"^/?ws/chat/(?P<public_id>[0-9a-fA-F-]{32,36})/$")


def widget_socket_id(path: str) -> uuid.UUID | None:
    """The conversation id of a widget socket's path, or None for every other path."""
    match = WIDGET_PATH.match(path)
    if match is None:
        return None
    try:
        return uuid.UUID(match["public_id"])
    except ValueError:
        return None


@database_sync_to_async
def _conversation_allows(public_id: uuid.UUID, origin: str) -> bool | None:
    """None when there is no such conversation, else whether its route allows ``origin``."""
    conversation = Conversation.objects.select_related("route").filter(public_id=public_id).first()
    if conversation is None:
        return None
    return route_origin_allowed(conversation.route, origin)


class _OriginRefused(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.close(code=CLOSE_ORIGIN_REFUSED)


class WidgetOriginValidator:
    """ASGI middleware: the widget's socket checks its conversation's route; others our hosts."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.own_hosts = AllowedHostsOriginValidator(application)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        public_id = widget_socket_id(scope.get("path", ""))
        if public_id is None:
            return await self.own_hosts(scope, receive, send)
        origin = _origin_header(scope)
        if origin is not None:
            if self.own_hosts.valid_origin(urlparse(origin)):
                return await self.application(scope, receive, send)
            # None: unknown conversation, let the consumer answer 4404 (nothing to read there)
            if await _conversation_allows(public_id, origin) is not False:
                return await self.application(scope, receive, send)
        return await _OriginRefused.as_asgi()(scope, receive, send)


def _origin_header(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return value.decode("latin1")
    return None
