"""Widget routes: where the chat widget may be embedded, and how it looks there.

A route's ``allowed_origins`` decide two things: which pages may start and read conversations
through the REST API across origins (django-cors-headers asks ``cors_origin_allowed``, see
``apps/chat/widget_signals.py``), and which pages may use that route (the start endpoint and
the socket check ``apps.chat.services.conversations.route_origin_allowed``). Origins are
stored normalised (``scheme://host[:port]``, lower case, no default port, no path), as
browsers send them, so a comparison is plain string equality.
"""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import connections, transaction

from apps.audit.services import audit_record
from apps.chat.models import WidgetRoute

MAX_ORIGINS = 50  # per route: a brand's shops and staging sites, not a directory of the web
COLOUR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"  # one DNS label
_HOST_PATTERN = re.compile(rf"^(?:\[[0-9a-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)$")  # a name, an IPv4 or [IPv6]
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What the route form edits; the same names as the model's fields.
AUDIT_ACTION = "widget_route.update"
EDITABLE_FIELDS = ("key", "name", "allowed_origins", "title", "greeting", "brand_colour", "handoff_intents", "active")


def origin_normalise(value: str) -> str:
    """``"HTTPS://Shop.Example.com:443"`` -> ``"https://shop.example.com"``.

    Raises:
        ValidationError: not ``scheme://host[:port]`` with scheme http or https (a path, a
            query, credentials or a wildcard are refused: an origin names one site exactly).
    """
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"{text!r}: {exc}") from exc
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in _DEFAULT_PORTS:
        raise ValidationError(f"{text!r}: an origin starts with http:// or https://")
    if parts.username or parts.password or parts.path or parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValidationError(f"{text!r}: an origin is scheme://host[:port], with no path, query or user")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # urlsplit drops an IPv6 address's brackets
    if not _HOST_PATTERN.match(host):
        raise ValidationError(f"{text!r}: {host or 'no host'} is not a host name")
    shown_port = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown_port}"


def origins_parse(text: str) -> list[str]:
    """One origin per line (blank lines ignored) -> the normalised, de-duplicated list.

    Raises:
        ValidationError: every bad line, each named by its number.
    """
    origins: list[str] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            origin = origin_normalise(line)
        except ValidationError as exc:
            errors.append(f"line {number}: {exc.messages[0]}")
            continue
        if origin not in origins:
            origins.append(origin)
    if len(origins) > MAX_ORIGINS:
        errors.append(f"at most {MAX_ORIGINS} origins per route ({len(origins)} given)")
    if errors:
        raise ValidationError(errors)
    return origins


def intents_parse(text: str) -> list[str]:
    """Hand-off intents, separated by commas or new lines: ``"complaint, cancel_order"``."""
    names = [name.strip() for name in re.split(r"[,\n]", text) if name.strip()]
    bad = [name for name in names if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", name)]
    if bad:
        raise ValidationError(f"not an intent name: {', '.join(bad[:5])} (letters, digits, _ . : - only)")
    return list(dict.fromkeys(names))


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    clean = {name: values[name] for name in EDITABLE_FIELDS if name in values}
    if "brand_colour" in clean:
        if not COLOUR_PATTERN.match(str(clean["brand_colour"])):
            raise ValidationError({"brand_colour": "a colour is #RRGGBB, e.g. #2563eb"})
        clean["brand_colour"] = str(clean["brand_colour"]).lower()
    for name, parse in (("allowed_origins", origins_parse), ("handoff_intents", intents_parse)):
        if name in clean:
            raw = clean[name]
            try:
                clean[name] = parse(raw if isinstance(raw, str) else "\n".join(raw))
            except ValidationError as exc:
                raise ValidationError({name: exc.messages}) from exc
    return clean


def route_create(*, values: dict[str, Any], user: Any, request: Any = None) -> WidgetRoute:
    """Validates and creates a route (``full_clean``: key is a unique slug, lengths hold);
    audited, since its origins open the API and the sockets to other sites.

    Raises:
        ValidationError: by field.
    """
    route = WidgetRoute(**_clean(values))
    route.full_clean()
    with transaction.atomic():
        route.save()
        audit_record(
            actor=user,
            action=AUDIT_ACTION,
            target=route,
            request=request,
            summary=f"created widget route {route.key}",
            details={"allowed_origins": route.allowed_origins, "active": route.active},
        )
    return route


def route_update(route: WidgetRoute, *, values: dict[str, Any], user: Any, request: Any = None) -> WidgetRoute:
    """Validates and saves the given fields of ``route`` (audited with what changed).

    Raises:
        ValidationError: by field.
    """
    clean = _clean(values)
    before = {name: getattr(route, name) for name in clean}
    for name, value in clean.items():
        setattr(route, name, value)
    route.full_clean()
    changed = {name: {"from": before[name], "to": value} for name, value in clean.items() if before[name] != value}
    with transaction.atomic():
        route.save(update_fields=list(clean) or None)
        if changed:
            audit_record(
                actor=user,
                action=AUDIT_ACTION,
                target=route,
                request=request,
                summary=f"changed widget route {route.key}: {', '.join(changed)}",
                details=changed,
            )
    return route


def route_origin_allowed(route: WidgetRoute | None, origin: str) -> bool:
    """Does ``route`` list ``origin``? (an inactive route: nobody; the socket's check, with
    this site's own hosts accepted before it is asked)."""
    if route is None or not route.active or not origin:
        return False
    try:
        return origin_normalise(origin) in route.allowed_origins
    except ValidationError:
        return False  # "null" (a sandboxed frame, a file:// page) and other non-origins


def _active_origins() -> frozenset[str]:
    # JSON lists are read in Python: a few routes per site, and SQLite has no JSON contains.
    rows = WidgetRoute.objects.filter(active=True).values_list("allowed_origins", flat=True)
    return frozenset(origin for origins in rows for origin in origins)


def _active_origins_off_loop() -> frozenset[str]:
    """``_active_origins()``, also from an event loop: under ASGI, django-cors-headers' async
    middleware sends its signal on the loop, where the ORM may not run. A short-lived thread
    runs the query (about a millisecond, once per ``CORS_ORIGINS_CACHE_S``) and closes its
    connection, so no connection is left behind."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _active_origins()

    def query() -> frozenset[str]:
        try:
            return _active_origins()
        finally:
            connections.close_all()  # this thread's connections only

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-cors") as pool:
        return pool.submit(query).result()


# (monotonic time of the read, the origins): a route saved in this process resets it at once
# (apps/chat/widget_signals.py), one saved in another process counts after this many seconds.
CORS_ORIGINS_CACHE_S = 5.0
_origins_cache: tuple[float, frozenset[str]] = (float("-inf"), frozenset())


def cors_origins_reset() -> None:
    global _origins_cache
    _origins_cache = (float("-inf"), frozenset())


def cors_origin_allowed(origin: str) -> bool:
    """Does any active route list ``origin``? (the CORS answer; the start endpoint then
    checks the route named in the request, ``conversations.route_origin_allowed``)."""
    global _origins_cache
    try:
        normalised = origin_normalise(origin)
    except ValidationError:
        return False
    stamp, origins = _origins_cache
    if time.monotonic() - stamp > CORS_ORIGINS_CACHE_S:
        origins = _active_origins_off_loop()
        _origins_cache = (time.monotonic(), origins)
    return normalised in origins


def embed_snippet(route: WidgetRoute, *, base_url: str) -> str:
    """The script tag a site pastes to embed ``route``'s widget (``base_url``: this server)."""
    return f'<script src="{base_url.rstrip("/")}/static/chat/widget.js" data-route="{route.key}" defer></script>'


@dataclass(frozen=True)
class DemoRouteResult:
    route: WidgetRoute
    created: bool
    origins_added: list[str]


DEMO_ROUTE_KEY = "demo"


def demo_route_ensure(*, origins: list[str]) -> DemoRouteResult:
    """The demo shop's route, with ``origins`` among its allowed origins (idempotent: a second
    call adds only origins it lacks and leaves an admin's edits alone)."""
    wanted = [origin_normalise(origin) for origin in origins]
    with transaction.atomic():
        route, created = WidgetRoute.objects.select_for_update().get_or_create(
            key=DEMO_ROUTE_KEY,
            defaults={
                "name": "Demo shop",
                "title": "Trellis Shop help",
                "allowed_origins": wanted,
                "greeting": "Hi! I answer from the shop's policies: returns, refunds, orders, "
                "shipping and your account. Ask me, or ask for a person.",
            },
        )
        added = [] if created else [origin for origin in wanted if origin not in route.allowed_origins]
        if added:
            route.allowed_origins = [*route.allowed_origins, *added]
            route.save(update_fields=["allowed_origins"])
    return DemoRouteResult(route=route, created=created, origins_added=wanted if created else added)
