"""The process's entity linker, kept in step with the Entity table.

spaCy loads once per process (``ml.sentiment.entities``); the watchlist's ruler is rebuilt
(milliseconds) whenever the active entities change. Whether they changed is read from a
stamp of the table (count, newest ``updated_at``, sum of ids): one aggregate query per
scoring batch, so an analyst's edit reaches every worker by its next batch.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db.models import Count, Max, Sum

from apps.sentiment.models import Entity

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cached: dict[str, Any] = {"stamp": None, "linker": None, "ids": {}}


def entities_stamp() -> tuple[Any, ...]:
    row = Entity.objects.filter(active=True).aggregate(n=Count("id"), newest=Max("updated_at"), ids=Sum("id"))
    return row["n"], row["newest"], row["ids"]


def watch_entities(entities: list[Entity]) -> list[Any]:
    """``ml`` watchlist entries of ``entities``; one the linker cannot take is logged and left out."""
    from ml.sentiment.entities import WatchEntity

    out = []
    for entity in entities:
        try:
            out.append(WatchEntity(entity.symbol, entity.name, tuple(entity.aliases or ()), entity.exchange or None))
        except (TypeError, ValueError) as exc:
            log.warning("entity %s left out of linking: %s", entity.symbol, exc)
    return out


def linker_get() -> tuple[Any, dict[str, int]]:
    """(the linker, symbol -> Entity id) for the active entities, rebuilt when they changed;
    (None, {}) when no entity is active."""
    stamp = entities_stamp()
    with _lock:
        if _cached["stamp"] == stamp:
            return (_cached["linker"] if _cached["ids"] else None), _cached["ids"]
        entities = list(Entity.objects.filter(active=True))
        watch = watch_entities(entities)
        if not watch:  # nothing to link: no spaCy load, no empty ruler
            _cached.update(stamp=stamp, ids={})
            return None, {}
        linker = _cached["linker"]
        try:
            if linker is None:
                from ml.sentiment.entities import EntityLinker

                linker = EntityLinker(watch)
            else:
                linker.set_entities(watch)
        except ValueError as exc:  # two entities share a name: link none of the second's names
            log.error("watchlist cannot be compiled (%s); linking symbols and names one by one", exc)
            linker = _lenient(linker, watch)
        _cached.update(stamp=stamp, linker=linker, ids={e.symbol: e.pk for e in entities})
        return linker, _cached["ids"]


def _lenient(linker: Any, watch: list[Any]) -> Any:
    """A linker of the entities that compile together (the first owner of a name keeps it)."""
    from ml.sentiment.entities import EntityLinker

    linker = linker or EntityLinker([])
    kept: list[Any] = []
    for entry in watch:
        try:
            linker.set_entities([*kept, entry])
            kept.append(entry)
        except ValueError as exc:
            log.error("entity %s left out of linking: %s", entry.symbol, exc)
    linker.set_entities(kept)
    return linker


def linker_reset() -> None:
    """Forgets the cached linker's stamp (tests); spaCy stays loaded."""
    with _lock:
        _cached["stamp"] = None
