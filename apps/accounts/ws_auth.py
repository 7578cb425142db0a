"""WebSocket authentication: the session cookie, or a single-use ticket (``?ticket=``).

API tokens are not accepted in the URL: URLs end up in server and proxy logs. A client
trades its token for a ticket at ``POST /api/auth/ws-ticket/`` (``services.tickets``). A socket
opened with a ticket carries ``scope["auth_token_id"]`` (the token it was obtained with, or
None), so revoking that token closes it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware

from apps.accounts.services.tickets import TicketGrant, ws_ticket_redeem

MAX_TICKET_CHARS = 512  # real tickets are ~110 characters; anything longer is not worth verifying


@database_sync_to_async
def _redeem(ticket: str) -> TicketGrant | None:
    return ws_ticket_redeem(ticket)


class TicketAuthMiddleware(BaseMiddleware):
    """Sets ``scope["user"]`` from ``?ticket=<ticket>`` when the session did not sign anyone in."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        user = scope.get("user")
        scope = {**scope, "auth_token_id": None}
        if not (user and user.is_authenticated):
            params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            ticket = (params.get("ticket") or [""])[0]
            if ticket and len(ticket) <= MAX_TICKET_CHARS:
                grant = await _redeem(ticket)
                if grant is not None:
                    scope = {**scope, "user": grant.user, "auth_token_id": grant.token_id}
        return await super().__call__(scope, receive, send)


def TrellisAuthMiddlewareStack(inner: Any) -> Any:  # noqa: N802 - mirrors Channels' naming
    return AuthMiddlewareStack(TicketAuthMiddleware(inner))
