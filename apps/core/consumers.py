"""WebSocket consumers: a JSON base class every app's consumer builds on, and ping/echo."""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from apps.accounts.roles import user_has_role
from apps.accounts.services.tokens import token_group, user_group

# Close codes in the 4000-4999 range are ours: https://www.rfc-editor.org/rfc/rfc6455#section-7.4.2
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class JsonConsumer(AsyncJsonWebsocketConsumer):
    """Authenticates from ``scope``, checks roles, and answers bad frames with an error frame.

    Subclasses set ``roles`` (empty: any signed-in user) and implement ``receive_message``.
    A frame that is not JSON, not an object, or too large gets
    ``{"type": "error", "code": ..., "message": ...}`` and the socket stays open.
    """

    roles: tuple[str, ...] = ()
    allow_anonymous = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not self.allow_anonymous and not (user and user.is_authenticated):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if self.roles and not await self._has_role(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        await self.on_connected()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Joins the user's and the token's revocation groups first (every subclass accepts
        through here), so revoking the token or the user's credentials closes this socket.
        ``self.groups`` is left on disconnect by Channels itself."""
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            joined = [user_group(user.pk)]
            if self.scope.get("auth_token_id") is not None:
                joined.append(token_group(self.scope["auth_token_id"]))
            for group in joined:
                await self.channel_layer.group_add(group, self.channel_name)
            self.groups = [*self.groups, *joined]
        await super().accept(subprotocol=subprotocol, headers=headers)

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        """``auth.revoked`` (apps.accounts.services.tokens): the credentials behind this socket are gone."""
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _has_role(self, user: Any) -> bool:
        return await self._has_role_for(user, self.roles)

    @staticmethod
    async def _has_role_for(user: Any, roles: tuple[str, ...]) -> bool:
        from channels.db import database_sync_to_async

        return await database_sync_to_async(user_has_role)(user, roles)

    async def on_connected(self) -> None:
        """Hook for subclasses: join groups, send a greeting."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        raw = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        if len(raw.encode("utf-8")) > settings.WEBSOCKET_MAX_FRAME_BYTES:
            limit = settings.WEBSOCKET_MAX_FRAME_BYTES
            await self.send_error("frame_too_large", f"Frames are limited to {limit} bytes.")
            return
        try:
            content = json.loads(raw)
        except ValueError as exc:
            await self.send_error("invalid_json", f"Frame is not valid JSON: {exc}")
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error("invalid_message", 'Frames must be JSON objects with a string "type".')
            return
        await self.receive_message(content)

    async def receive_message(self, content: dict[str, Any]) -> None:
        raise NotImplementedError

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})


class PingConsumer(JsonConsumer):
    """``ws/ping/``: proves the stack end to end (auth, channel layer, groups, servers).

    ``{"type": "ping"}`` -> ``pong``; ``{"type": "echo", "text": ...}`` -> the same text;
    messages group-sent to ``ping`` (from any server sharing the channel layer) arrive as
    ``{"type": "broadcast", ...}``; an admin's ``{"type": "broadcast", "text": ...}`` sends one.
    """

    group = "ping"

    async def on_connected(self) -> None:
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json({"type": "hello", "user": self.scope["user"].username, "server": settings.SERVER_NAME})

    async def disconnect(self, code: int) -> None:
        if self.channel_layer is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_message(self, content: dict[str, Any]) -> None:
        kind = content["type"]
        if kind == "ping":
            await self.send_json({"type": "pong", "server": settings.SERVER_NAME})
        elif kind == "echo":
            await self.send_json({"type": "echo", "text": str(content.get("text", ""))})
        elif kind == "broadcast":
            if not await self._has_role_admin():
                await self.send_error("forbidden", "Only admins may broadcast.")
                return
            await self.channel_layer.group_send(
                self.group, {"type": "ping.broadcast", "text": str(content.get("text", "")),
                             "origin": settings.SERVER_NAME})
        else:
            await self.send_error("unknown_type", f"Unknown message type {kind!r}.")

    async def _has_role_admin(self) -> bool:
        from apps.accounts.roles import Role

        return await self._has_role_for(self.scope["user"], (Role.ADMIN,))

    async def ping_broadcast(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "broadcast", "text": event.get("text", ""), "origin": event.get("origin")})
