"""WebSocket authentication: the session cookie, or an API token in the query string."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware


@database_sync_to_async
def _user_for_token(key: str) -> Any:
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    return token.user if token and token.user.is_active else None


class TokenAuthMiddleware(BaseMiddleware):
    """Sets ``scope["user"]`` from ``?token=<key>`` when the session did not sign anyone in."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        user = scope.get("user")
        if not (user and user.is_authenticated):
            params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            key = (params.get("token") or [""])[0]
            if key:
                found = await _user_for_token(key)
                if found is not None:
                    scope = {**scope, "user": found}
        return await super().__call__(scope, receive, send)


def TrellisAuthMiddlewareStack(inner: Any) -> Any:  # noqa: N802 - mirrors Channels' naming
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
