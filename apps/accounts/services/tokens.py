"""API tokens: hashed at rest (django-rest-knox), shown once, expiring, revocable.

Only a SHA-512 digest of each key is stored; the key itself is returned once, by
``token_create``. Revoking a token (rotate, revoke) closes the WebSockets opened with it;
revoking all of a user's tokens (password change, deactivation) closes all of that user's
sockets. Sockets join both groups on accept (``apps.core.consumers.JsonConsumer``) and close
with 4401 on the ``auth.revoked`` event sent here.
"""

from __future__ import annotations

from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken, User
from apps.audit.services import audit_record

REVOKED_EVENT = "auth.revoked"


def user_group(user_id: int) -> str:
    """Channel-layer group of every socket ``user_id`` has open."""
    return f"auth_user_{user_id}"


def token_group(token_id: int) -> str:
    """Channel-layer group of the sockets opened with API token ``token_id``."""
    return f"auth_token_{token_id}"


def token_create(user: User, *, ttl: timedelta | None = None) -> tuple[ApiToken, str]:
    """A new token for ``user``, valid for ``ttl`` (default ``TRELLIS_TOKEN_TTL_HOURS``).

    Returns the stored token and its key: the key is never stored and cannot be shown again.
    """
    ApiToken.objects.filter(user=user, expiry__lt=timezone.now()).delete()
    return ApiToken.objects.create(user, expiry=ttl or timedelta(hours=settings.TRELLIS_TOKEN_TTL_HOURS))


def _token_ref(token: ApiToken) -> tuple[str, str]:
    return ("accounts.apitoken", str(token.pk))


@transaction.atomic
def token_rotate(token: ApiToken, *, request: object | None = None) -> tuple[ApiToken, str]:
    """Revokes ``token`` and returns a new one for the same user (with a fresh expiry)."""
    user = token.user
    old_ref, prefix = _token_ref(token), token.token_key
    _revoke(token)
    new, key = token_create(user)
    audit_record(actor=user, action="token.rotate", target=old_ref, request=request,
                 summary=f"token {prefix}… replaced by {new.token_key}…", details={"new_token_id": new.pk})
    return new, key


@transaction.atomic
def token_revoke(token: ApiToken, *, request: object | None = None) -> None:
    """Deletes ``token``; requests and sockets using it are refused from now on."""
    # With a request its user is the actor (an admin revoking someone's token in the admin).
    actor = None if request is not None else token.user
    audit_record(actor=actor, action="token.revoke", target=_token_ref(token), request=request,
                 summary=f"token {token.token_key}… revoked")
    _revoke(token)


def token_revoke_by_id(*, user: User, token_id: int, request: object | None = None) -> None:
    """Revokes one of ``user``'s own tokens; ``ApiToken.DoesNotExist`` for anybody else's."""
    token_revoke(ApiToken.objects.get(user=user, pk=token_id), request=request)


@transaction.atomic
def tokens_revoke_all(user: User, *, reason: str = "") -> int:
    """Revokes every token of ``user`` and closes all of their sockets; returns how many tokens."""
    count, _ = ApiToken.objects.filter(user=user).delete()
    _close_sockets(user_group(user.pk))
    if count:
        audit_record(actor=user, action="token.revoke_all", target=user,
                     summary=f"{count} token(s) revoked" + (f": {reason}" if reason else ""))
    return count


def _revoke(token: ApiToken) -> None:
    token_id = token.pk
    token.delete()
    _close_sockets(token_group(token_id))


def _close_sockets(group: str) -> None:
    """After the commit, tells every socket in ``group`` (on any server) to close with 4401."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(group, {"type": REVOKED_EVENT})

    # robust: the tokens are gone either way; a channel layer that is down must not undo that.
    transaction.on_commit(send, robust=True)
