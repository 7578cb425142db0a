"""Health of the parts Trellis needs: database, cache, broker, channel layer."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache, caches
from django.db import connection

logger = logging.getLogger(__name__)


def _timed(name: str, check: Callable[[], str]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a health check reports every failure, whatever its type
        logger.warning("health check %s failed", name, exc_info=exc)
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _cache() -> str:
    key = f"healthz:{uuid.uuid4().hex}"
    cache.set(key, "1", 10)
    if cache.get(key) != "1":
        raise RuntimeError("value written to the cache could not be read back")
    cache.delete(key)
    return caches["default"].__class__.__name__


def _broker() -> str:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport_cls if isinstance(conn.transport_cls, str) else conn.transport.driver_type


async def _channel_layer_roundtrip() -> str:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "health.ping":
        raise RuntimeError("channel layer returned a different message")
    return layer.__class__.__name__


def _channel_layer() -> str:
    return async_to_sync(_channel_layer_roundtrip)()


CHECKS: dict[str, Callable[[], str]] = {
    "database": _database,
    "cache": _cache,
    "broker": _broker,
    "channel_layer": _channel_layer,
}


def health_report() -> dict[str, Any]:
    """Runs every check; ``status`` is ``ok`` only when all pass. Each check's ``detail`` is
    the backend's name, or the exception text when it failed (hosts, user names): admins only."""
    checks = {name: _timed(name, check) for name, check in CHECKS.items()}
    return {"status": "ok" if all(c["ok"] for c in checks.values()) else "degraded", "checks": checks}


def health_summary(report: dict[str, Any]) -> dict[str, Any]:
    """What anyone may see of ``report``: the status and which checks pass, nothing else."""
    return {"status": report["status"], "checks": {name: {"ok": c["ok"]} for name, c in report["checks"].items()}}
