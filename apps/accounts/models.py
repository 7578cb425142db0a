from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from knox.models import AbstractAuthToken
from knox.settings import CONSTANTS


class User(AbstractUser):
    """Trellis user. Roles are Django groups (see ``apps.accounts.roles``)."""

    class Meta:
        ordering = ("username",)


class ApiToken(AbstractAuthToken):
    """An API token (``Authorization: Token <key>``), stored as a SHA-512 digest only.

    knox's own model keys tokens by their digest; this one adds a plain integer id, so a user
    can list and revoke their tokens without the digest ever leaving the server. The key is
    shown once, when it is created (``apps.accounts.services.token_create``).
    """

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=CONSTANTS.DIGEST_LENGTH, unique=True)

    class Meta:
        ordering = ("-created", "-id")
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user_id})"

    @property
    def prefix(self) -> str:
        """The first characters of the key: enough to recognise it, far too few to use it."""
        return self.token_key[:8]


class UsedSocketTicket(models.Model):
    """Nonces of WebSocket tickets already redeemed: a ticket opens one socket, once.

    The unique constraint makes redemption atomic across processes; rows are deleted once
    the ticket they refer to has expired (see ``services.tickets``).
    """

    nonce = models.CharField(max_length=32, unique=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ("expires_at",)

    def __str__(self) -> str:
        return self.nonce


class ThrottleCacheEntry(models.Model):
    """The table of the ``throttle`` cache on the embedded default (django's DatabaseCache).

    API throttles and login limits must count across every process of one install (ASGI
    servers, workers); without Redis the database is the one store they all share. Declared
    as a model so that ``migrate`` creates it and test databases flush it; only the cache
    backend reads or writes it. Columns as ``manage.py createcachetable`` would create them.
    """

    cache_key = models.CharField(max_length=255, primary_key=True)
    value = models.TextField()
    expires = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "accounts_throttle_cache"
        ordering = ("cache_key",)

    def __str__(self) -> str:
        return self.cache_key
