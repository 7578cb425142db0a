"""Widget keys: a public key in a shop's script tag, read-only, from listed origins only.

The public key is in the page source, so anybody can use it: it only reads recommendations,
and only from the origins the merchandiser listed. A personal list needs the customer's id
signed by the shop's server (HMAC-SHA256 with the key's secret, hex); without a valid
signature the widget gets recommendations for its anonymous session, so a visitor who types
someone else's id learns nothing about what they bought.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import audit_record
from apps.recommend.models import WidgetKey

ORIGINS_CACHE_S = 5.0  # a new or revoked key reaches CORS within this many seconds
_origins_cache: tuple[float, frozenset[str]] = (0.0, frozenset())


def _clean_origin(origin: str) -> str:
    try:
        parts = urlsplit(origin.strip())
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        raise ValidationError(f"{origin!r} is not an origin like https://shop.example") from exc
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
            or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValidationError(f"{origin!r} is not an origin like https://shop.example or http://localhost:8080")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _key_ref(key: WidgetKey) -> tuple[str, str]:
    return ("recommend.widgetkey", str(key.pk))


@transaction.atomic
def widget_key_create(*, name: str, allowed_origins: list[str], user: Any, request: Any = None) -> WidgetKey:
    """A new key. Its ``signing_secret`` is for the caller to show once: HMAC needs it stored
    in clear, but no list or page shows it again (rotate it if it is lost)."""
    origins = sorted({_clean_origin(origin) for origin in allowed_origins if origin.strip()})
    if not origins:
        raise ValidationError("List at least one origin the widget may be embedded on.")
    key = WidgetKey.objects.create(
        name=name.strip()[:100] or "widget", public_key="wk_" + secrets.token_urlsafe(24),
        signing_secret=secrets.token_hex(32), allowed_origins=origins,
        created_by=user if getattr(user, "pk", None) else None,
    )
    audit_record(actor=user, action="widget_key.create", target=_key_ref(key), request=request,
                 summary=f"widget key {key.name!r} ({key.public_key[:10]}…) for {', '.join(origins)}")
    widget_origins_reset()
    return key


@transaction.atomic
def widget_key_rotate(*, key: WidgetKey, user: Any, request: Any = None) -> WidgetKey:
    """A fresh signing secret (shown once by the caller); signatures made with the old one stop working."""
    key.signing_secret = secrets.token_hex(32)
    key.save(update_fields=["signing_secret"])
    audit_record(actor=user, action="widget_key.rotate", target=_key_ref(key), request=request,
                 summary=f"widget key {key.name!r} ({key.public_key[:10]}…): signing secret rotated")
    return key


@transaction.atomic
def widget_key_deactivate(*, key: WidgetKey, user: Any = None, request: Any = None) -> WidgetKey:
    """Revokes the key: the widget with it is refused from now on (CORS within ORIGINS_CACHE_S)."""
    key.active = False
    key.save(update_fields=["active"])
    audit_record(actor=user, action="widget_key.revoke", target=_key_ref(key), request=request,
                 summary=f"widget key {key.name!r} ({key.public_key[:10]}…) revoked")
    widget_origins_reset()
    return key


def widget_origins_reset() -> None:
    global _origins_cache
    _origins_cache = (0.0, frozenset())


def origin_allowed(origin: str) -> bool:
    """True if some active widget key lists ``origin`` (the CORS check of the widget routes)."""
    global _origins_cache
    if not origin:
        return False
    now = time.monotonic()
    stamp, origins = _origins_cache
    if now - stamp > ORIGINS_CACHE_S:
        origins = frozenset(
            o for row in WidgetKey.objects.filter(active=True).values_list("allowed_origins", flat=True) for o in row
        )
        _origins_cache = (now, origins)
    return origin.lower() in origins


def widget_key_for(public_key: str, origin: str) -> WidgetKey | None:
    """The active key, if ``origin`` (the browser's Origin header) is one it lists."""
    key = WidgetKey.objects.filter(public_key=public_key, active=True).first()
    if key is None or origin.lower() not in key.allowed_origins:
        return None
    return key


def user_signature(key: WidgetKey, user_key: str) -> str:
    """What the shop's server puts in ``data-user-signature`` for ``user_key``."""
    return hmac.new(key.signing_secret.encode(), user_key.encode(), hashlib.sha256).hexdigest()


def signed_user(key: WidgetKey, user_key: str, signature: str) -> str | None:
    """``user_key`` when ``signature`` is its HMAC under ``key``, else None."""
    if not user_key or not signature:
        return None
    return user_key if hmac.compare_digest(user_signature(key, user_key), signature.lower()) else None
