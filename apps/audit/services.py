"""Recording audit events. Call ``audit_record`` inside the transaction of the change it
describes, so that the change and its record commit (or roll back) together."""

from __future__ import annotations

import getpass
import ipaddress
import re
import socket
from typing import Any

from django.conf import settings
from django.db import models

from apps.audit.models import AuditEvent

ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
SUMMARY_MAX = AuditEvent._meta.get_field("summary").max_length
USER_AGENT_MAX = AuditEvent._meta.get_field("user_agent").max_length


def client_ip(request: Any) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or with ``TRELLIS_NUM_PROXIES`` = n > 0 the
    n-th address from the right of ``X-Forwarded-For`` (DRF's ``NUM_PROXIES`` rule: the
    one our outermost proxy saw; the ones left of it are whatever the client claimed)."""
    meta = getattr(request, "META", {})
    address = meta.get("REMOTE_ADDR")
    proxies = int(getattr(settings, "TRELLIS_NUM_PROXIES", 0) or 0)
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if proxies > 0 and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            address = hops[-min(proxies, len(hops))]
    try:
        return str(ipaddress.ip_address((address or "").strip()))
    except ValueError:
        return None


def command_origin(command: str) -> str:
    """Who ran a management command, for events without a request: the OS account and host."""
    try:
        os_user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers) and no LOGNAME/USER
        os_user = "unknown"
    return f"manage.py {command} by OS user {os_user} on {socket.gethostname()}"


def _target_ref(target: object | None) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, models.Model):
        return target._meta.label_lower, "" if target.pk is None else str(target.pk)
    if isinstance(target, tuple) and len(target) == 2:
        return str(target[0]), str(target[1])
    raise TypeError(f"audit target must be a model instance or a (type, id) pair, not {type(target).__name__}")


def audit_record(
    *,
    actor: Any,
    action: str,
    target: object | None = None,
    summary: str = "",
    details: dict[str, Any] | None = None,
    request: Any = None,
) -> AuditEvent:
    """Appends one event.

    ``actor`` is a user or None (a system or command-line change; say who in ``summary``).
    ``target`` is a model instance (its ``app_label.model`` and pk are stored) or a
    ``(type, id)`` pair. With a ``request`` the client's address and user agent are kept,
    and its user stands in for a missing ``actor``.

    Raises:
        ValueError: ``action`` is not a dotted lower-case code such as ``model.promote``.
    """
    if not ACTION_RE.match(action or ""):
        raise ValueError(f"audit action must look like 'object.verb', not {action!r}")
    if actor is None and request is not None:
        actor = getattr(request, "user", None)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    target_type, target_id = _target_ref(target)
    return AuditEvent.objects.create(
        actor=actor,
        actor_username=actor.get_username() if actor is not None else "",
        action=action,
        target_type=target_type,
        target_id=target_id,
        summary=summary[:SUMMARY_MAX],
        details=details or {},
        ip_address=client_ip(request) if request is not None else None,
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request is not None else "")[:USER_AGENT_MAX],
    )
