"""A short-lived, in-process memory of API-token authentications, for the hot endpoints.

knox checks a token with two queries (the token with its user, then the user's other tokens,
to delete expired ones) and the role check adds a third; on the embedded default each
request also opens a database connection for them. The inference API (``apps.serving``)
asks this cache first, on the event loop, and runs knox only on a miss.

An entry maps the SHA-512 digest of a key (as knox stores it; never the key itself) to the
user (roles loaded) and the token, and is used for ``TRELLIS_TOKEN_CACHE_S`` seconds
(0: no cache). What that means for revocation:

- in this process it takes effect at once: deleting a token (rotate, revoke, a new password,
  a deactivation, knox's logout) drops its entry, and saving a user, changing their groups or
  renaming a group drops theirs (``post_delete`` / ``post_save`` / ``m2m_changed``);
- in another server process it takes effect within ``TRELLIS_TOKEN_CACHE_S`` seconds;
- a token's knox expiry is checked on every use; a bulk ``QuerySet.update`` of users (no
  signals) reaches the cache only when the entry ages out.

An authentication that was looked up while something was dropped is not stored (a generation
counter), so a revocation racing with a lookup cannot leave a stale entry behind.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone
from knox.crypto import hash_token
from knox.settings import knox_settings
from rest_framework.authentication import get_authorization_header

from apps.accounts.models import ApiToken, User
from apps.accounts.roles import user_roles

MAX_ENTRIES = 10_000  # tokens remembered per process; beyond, the oldest entries go first


@dataclass(frozen=True)
class CachedAuth:
    user: User
    token: ApiToken
    until: float  # clock() after which the entry is not used


clock = time.monotonic  # a module attribute, so tests can move time on
_entries: dict[str, CachedAuth] = {}  # digest -> entry, oldest first (insertion order)
_lock = threading.Lock()
_generation = 0


def ttl_s() -> float:
    """Seconds an entry is used; 0 (no cache) when knox renews expiries on use (``AUTO_REFRESH``),
    which a remembered authentication would skip."""
    if knox_settings.AUTO_REFRESH:
        return 0.0
    return max(0.0, float(settings.TRELLIS_TOKEN_CACHE_S))


def token_cache_generation() -> int:
    """Read before a lookup; pass to ``token_cache_put`` (see the module notes)."""
    return _generation


def token_cache_get(key: str) -> tuple[User, ApiToken] | None:
    """The user and token of ``key`` if remembered, unexpired and the user active; else None
    (authenticate with knox). Cheap: one SHA-512 and a dict lookup, no database."""
    if not key or ttl_s() <= 0:
        return None
    try:
        digest = hash_token(key)
    except (TypeError, ValueError):  # not a knox key (binascii.Error is a ValueError)
        return None
    entry = _entries.get(digest)
    if entry is None:
        return None
    expiry = entry.token.expiry
    if clock() >= entry.until or (expiry is not None and expiry <= timezone.now()) or not entry.user.is_active:
        with _lock:
            if _entries.get(digest) is entry:
                del _entries[digest]
        return None
    return entry.user, entry.token


def token_cache_lookup(request: Any) -> tuple[User, ApiToken] | None:
    """``token_cache_get`` for the key of a request's ``Authorization: Token <key>`` header,
    read as knox reads it (any other header: None)."""
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != knox_settings.AUTH_HEADER_PREFIX.lower().encode():
        return None
    try:
        return token_cache_get(parts[1].decode())
    except UnicodeDecodeError:
        return None


def token_cache_put(user: User, token: ApiToken, *, generation: int) -> None:
    """Remembers a knox authentication (call off the event loop: it loads the user's roles).

    Not stored when anything was dropped since ``generation`` was read.
    """
    ttl = ttl_s()
    if ttl <= 0 or not isinstance(token, ApiToken) or not user.is_active:
        return
    user_roles(user)  # cached on the user object: the role checks on the event loop need no query
    entry = CachedAuth(user=user, token=token, until=clock() + ttl)
    with _lock:
        if generation != _generation:
            return
        _entries.pop(token.digest, None)
        _entries[token.digest] = entry
        while len(_entries) > MAX_ENTRIES:
            del _entries[next(iter(_entries))]


def _drop(*, digest: str | None = None, user_id: int | None = None) -> None:
    global _generation
    with _lock:
        _generation += 1
        if digest is not None:
            _entries.pop(digest, None)
        if user_id is not None:
            for key in [k for k, e in _entries.items() if e.user.pk == user_id]:
                del _entries[key]


def token_cache_clear() -> None:
    """Forgets every entry (group renames, tests)."""
    global _generation
    with _lock:
        _generation += 1
        _entries.clear()


def _token_deleted(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    _drop(digest=instance.digest)


def _user_changed(sender: Any, instance: User, **kwargs: Any) -> None:
    _drop(user_id=instance.pk)


def _groups_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any) -> None:
    if not action.startswith("post_"):
        return
    if not reverse:  # user.groups.add/remove/clear
        _drop(user_id=instance.pk)
    elif pk_set:  # group.user_set.add/remove: these users
        for pk in pk_set:
            _drop(user_id=pk)
    else:  # group.user_set.clear(): whoever was in it
        token_cache_clear()


def _group_changed(sender: Any, **kwargs: Any) -> None:
    token_cache_clear()  # a renamed or deleted group changes the roles of its members


post_delete.connect(_token_deleted, sender=ApiToken, dispatch_uid="accounts.token_cache.token_deleted")
post_save.connect(_user_changed, sender=User, dispatch_uid="accounts.token_cache.user_saved")
post_delete.connect(_user_changed, sender=User, dispatch_uid="accounts.token_cache.user_deleted")
m2m_changed.connect(_groups_changed, sender=User.groups.through, dispatch_uid="accounts.token_cache.groups")
post_save.connect(_group_changed, sender=Group, dispatch_uid="accounts.token_cache.group_saved")
post_delete.connect(_group_changed, sender=Group, dispatch_uid="accounts.token_cache.group_deleted")
