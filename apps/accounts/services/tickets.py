"""WebSocket tickets: short-lived, single-use, signed.

Browsers cannot set headers on a WebSocket, and a long-lived API token in the URL ends up in
server and proxy logs. So a client trades its token (or its session) for a ticket at
``POST /api/auth/ws-ticket/`` and opens the socket with ``?ticket=<ticket>``. A ticket is signed
with the secret key (``django.core.signing``), names the user and the token it was obtained
with, is valid for ``TRELLIS_WS_TICKET_TTL_S`` seconds and opens one socket: redeeming
records its nonce in a unique column, so a replay (on any server) is refused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import ApiToken, UsedSocketTicket, User

TICKET_SALT = "trellis.accounts.ws-ticket"


@dataclass(frozen=True)
class TicketGrant:
    user: User
    token_id: int | None  # the API token the ticket was obtained with; None for a session


def ws_ticket_create(user: User, *, token: ApiToken | None = None) -> str:
    """A ticket for ``user``, bound to ``token`` when it was obtained with one."""
    payload = {"u": user.pk, "t": token.pk if token is not None else None, "n": secrets.token_hex(16)}
    return signing.dumps(payload, salt=TICKET_SALT)


def _payload(ticket: str) -> dict[str, Any] | None:
    try:
        payload = signing.loads(ticket, salt=TICKET_SALT, max_age=settings.TRELLIS_WS_TICKET_TTL_S)
    except signing.BadSignature:  # also SignatureExpired
        return None
    if not (isinstance(payload, dict) and isinstance(payload.get("u"), int) and isinstance(payload.get("n"), str)):
        return None
    if payload.get("t") is not None and not isinstance(payload["t"], int):
        return None
    return payload


def ws_ticket_redeem(ticket: str) -> TicketGrant | None:
    """The user (and token) a valid, unused ticket stands for; ``None`` for anything else.

    Refused: a bad signature, an expired or already redeemed ticket, an inactive user, and a
    ticket whose token has been revoked or has expired since.
    """
    payload = _payload(ticket)
    if payload is None:
        return None
    now = timezone.now()
    UsedSocketTicket.objects.filter(expires_at__lt=now).delete()  # their tickets have expired
    try:
        with transaction.atomic():
            UsedSocketTicket.objects.create(
                nonce=payload["n"][:32], expires_at=now + timedelta(seconds=settings.TRELLIS_WS_TICKET_TTL_S)
            )
    except IntegrityError:
        return None  # replayed
    user = User.objects.filter(pk=payload["u"], is_active=True).first()
    if user is None:
        return None
    token_id = payload.get("t")
    if token_id is not None:
        live = Q(expiry__isnull=True) | Q(expiry__gt=now)
        if not ApiToken.objects.filter(live, pk=token_id, user=user).exists():
            return None
    return TicketGrant(user, token_id)
