"""Entities and watchlists: validated, audited; the demo watchlist.

An entity's symbol is upper case (``$aapl`` is taken as ``AAPL``), 1-10 letters, digits,
"." or "-" (what the linker links); its name and aliases must not be a name of another
entity (compared as the linker compares them: case, punctuation and corporate suffixes
ignored, so "Alphabet Inc." and "alphabet" clash), or a mention could not say which one it is.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import audit_record
from apps.sentiment.models import SYMBOL_PATTERN, Entity, Watchlist
from apps.sentiment.services.documents import text_normalise
from ml.sentiment.entities import normalise_name

log = logging.getLogger(__name__)

SYMBOL_MAX = 10  # ml.sentiment.entities.WatchEntity's limit (the model allows 15)
ALIASES_MAX = 20
NAME_MAX = Entity._meta.get_field("name").max_length
EXCHANGE_MAX = Entity._meta.get_field("exchange").max_length
WATCHLIST_NAME_MAX = Watchlist._meta.get_field("name").max_length
DEMO_WATCHLIST = Path(settings.BASE_DIR) / "ml" / "sentiment" / "data" / "demo_watchlist.json"
DEMO_NAME = "Demo"
_SYMBOL = re.compile(SYMBOL_PATTERN)


def symbol_clean(raw: str) -> str:
    symbol = str(raw or "").strip().lstrip("$").upper()
    if not _SYMBOL.match(symbol) or len(symbol) > SYMBOL_MAX:
        raise ValidationError(f"symbol: use 1-{SYMBOL_MAX} upper-case letters, digits, '.' or '-' (e.g. AAPL, BRK.B)")
    return symbol


def _names(entity: Entity) -> list[tuple[str, str]]:
    return [(entity.name, normalise_name(entity.name))] + [(a, normalise_name(a)) for a in entity.aliases or []]


def _check(entity: Entity) -> None:
    entity.symbol = symbol_clean(entity.symbol)
    entity.name = text_normalise(str(entity.name or ""))
    if not entity.name or len(entity.name) > NAME_MAX:
        raise ValidationError(f"name: required, at most {NAME_MAX} characters")
    if not normalise_name(entity.name):
        raise ValidationError("name: needs letters or digits")
    aliases = entity.aliases or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ValidationError("aliases: a list of names")
    aliases = [text_normalise(a) for a in aliases if text_normalise(a)]
    if len(aliases) > ALIASES_MAX or any(len(a) > NAME_MAX for a in aliases):
        raise ValidationError(f"aliases: at most {ALIASES_MAX}, each at most {NAME_MAX} characters")
    entity.aliases = aliases
    entity.exchange = str(entity.exchange or "").strip().upper()
    if len(entity.exchange) > EXCHANGE_MAX:
        raise ValidationError(f"exchange: at most {EXCHANGE_MAX} characters")
    listed = {entity.name.lower()}
    for alias in aliases:
        if alias.lower() in listed:
            raise ValidationError(f"aliases: {alias!r} is listed twice (or is the name)")
        listed.add(alias.lower())
    seen = {key: shown for shown, key in reversed(_names(entity))}
    if Entity.objects.filter(symbol=entity.symbol).exclude(pk=entity.pk).exists():
        raise ValidationError(f"symbol: {entity.symbol} is already on the watchlist")
    for other in Entity.objects.exclude(pk=entity.pk).only("symbol", "name", "aliases"):
        for shown, key in _names(other):
            if key in seen:
                raise ValidationError(f"{seen[key]!r} is already a name of {other.symbol} ({shown!r})")


FIELDS = ("symbol", "name", "aliases", "exchange", "active")


def entity_create(*, values: dict[str, Any], user: Any, request: Any = None) -> Entity:
    entity = Entity(**{k: v for k, v in values.items() if k in FIELDS})
    _check(entity)
    with transaction.atomic():
        entity.save()
        audit_record(
            actor=user,
            action="sentiment_entity.create",
            target=entity,
            request=request,
            summary=f"entity {entity.symbol} ({entity.name}) added",
        )
    return entity


def entity_update(*, entity: Entity, values: dict[str, Any], user: Any, request: Any = None) -> Entity:
    if "symbol" in values and symbol_clean(values["symbol"]) != entity.symbol:
        raise ValidationError("symbol: cannot change (scores and series are filed under it); add a new entity")
    changed = {k: v for k, v in values.items() if k in FIELDS and k != "symbol" and getattr(entity, k) != v}
    for name, value in changed.items():
        setattr(entity, name, value)
    _check(entity)
    with transaction.atomic():
        entity.save()
        if changed:
            audit_record(
                actor=user,
                action="sentiment_entity.update",
                target=entity,
                request=request,
                summary=f"entity {entity.symbol} changed: {', '.join(sorted(changed))}",
            )
    return entity


def entity_delete(*, entity: Entity, user: Any, request: Any = None) -> None:
    """Deletes the entity with its mentions, scores, series and alerts (deactivate to keep them)."""
    with transaction.atomic():
        audit_record(
            actor=user,
            action="sentiment_entity.delete",
            target=entity,
            request=request,
            summary=f"entity {entity.symbol} deleted with its scores and series",
        )
        entity.delete()


# --- watchlists


def _members(symbols: list[str]) -> list[Entity]:
    wanted = {symbol_clean(s) for s in symbols}
    found = list(Entity.objects.filter(symbol__in=wanted))
    missing = wanted - {e.symbol for e in found}
    if missing:
        raise ValidationError(f"entities: unknown symbols {', '.join(sorted(missing))}; add them first")
    return found


def _watchlist_name(raw: str) -> str:
    name = text_normalise(str(raw or ""))
    if not name or len(name) > WATCHLIST_NAME_MAX:
        raise ValidationError(f"name: required, at most {WATCHLIST_NAME_MAX} characters")
    return name


def watchlist_create(*, name: str, symbols: list[str], user: Any, request: Any = None) -> Watchlist:
    name = _watchlist_name(name)
    if Watchlist.objects.filter(name__iexact=name).exists():
        raise ValidationError(f"name: a watchlist named {name!r} exists")
    members = _members(symbols)
    with transaction.atomic():
        watchlist = Watchlist.objects.create(name=name, created_by=user)
        watchlist.entities.set(members)
        audit_record(
            actor=user,
            action="sentiment_watchlist.create",
            target=watchlist,
            request=request,
            summary=f"watchlist {name} with {len(members)} entities",
        )
    return watchlist


def watchlist_update(
    *, watchlist: Watchlist, name: str | None = None, symbols: list[str] | None = None, user: Any, request: Any = None
) -> Watchlist:
    with transaction.atomic():
        if name is not None:
            name = _watchlist_name(name)
            if Watchlist.objects.filter(name__iexact=name).exclude(pk=watchlist.pk).exists():
                raise ValidationError(f"name: a watchlist named {name!r} exists")
            watchlist.name = name
            watchlist.save(update_fields=["name"])
        if symbols is not None:
            watchlist.entities.set(_members(symbols))
        audit_record(
            actor=user,
            action="sentiment_watchlist.update",
            target=watchlist,
            request=request,
            summary=f"watchlist {watchlist.name} changed",
        )
    return watchlist


def watchlist_delete(*, watchlist: Watchlist, user: Any, request: Any = None) -> None:
    with transaction.atomic():
        audit_record(
            actor=user,
            action="sentiment_watchlist.delete",
            target=watchlist,
            request=request,
            summary=f"watchlist {watchlist.name} deleted",
        )
        watchlist.delete()


def watchlist_load_demo(path: Path | str = DEMO_WATCHLIST) -> dict[str, Any]:
    """Adds the demo companies (ml/sentiment/data/demo_watchlist.json) and a "Demo" watchlist
    of them. Entities already present are kept as they are; an entry whose name clashes with
    another entity's is skipped and named in the result."""
    from ml.sentiment.entities import load_watchlist

    entries = load_watchlist(path)
    created, kept, skipped = [], [], []
    members = []
    with transaction.atomic():
        for entry in entries:
            existing = Entity.objects.filter(symbol=entry.symbol).first()
            if existing is not None:
                kept.append(entry.symbol)
                members.append(existing)
                continue
            entity = Entity(
                symbol=entry.symbol, name=entry.name, aliases=list(entry.aliases), exchange=entry.exchange or ""
            )
            try:
                _check(entity)
            except ValidationError as exc:
                skipped.append({"symbol": entry.symbol, "error": "; ".join(exc.messages)})
                continue
            entity.save()
            created.append(entry.symbol)
            members.append(entity)
        watchlist, _ = Watchlist.objects.get_or_create(name=DEMO_NAME)
        watchlist.entities.add(*members)
        audit_record(
            actor=None,
            action="sentiment_watchlist.load_demo",
            target=watchlist,
            summary=f"demo watchlist: {len(created)} entities added, {len(kept)} kept, {len(skipped)} skipped",
        )
    return {"watchlist": watchlist.pk, "created": created, "kept": kept, "skipped": skipped}
