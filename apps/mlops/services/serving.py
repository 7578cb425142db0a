"""How apps get a model: the registry, kept in step with the version promoted in the DB.

Every process (ASGI servers, Celery workers) asks ``model_get(role)``; it reads the active
version from the database at most every ``SYNC_INTERVAL_S`` seconds and hot-swaps the
process's registry when another process promoted or rolled back, with no restart.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ml.registry import Registry, default_registry

SYNC_INTERVAL_S = 2.0  # promotion reaches every process within this many seconds

_synced: dict[str, tuple[float, str | None]] = {}  # role -> (when, artifact path or None)
_lock = threading.Lock()


def _active_path(role: str) -> str | None:
    from apps.mlops.models import ModelVersion

    return (
        ModelVersion.objects.filter(role=role, status=ModelVersion.Status.ACTIVE)
        .values_list("artifact_path", flat=True)
        .first()
    )


def registry_sync(role: str, *, force: bool = False) -> Registry:
    """Points the process registry at the DB's active version of ``role`` (cheap when fresh)."""
    registry = default_registry()
    now = time.monotonic()
    with _lock:
        last = _synced.get(role)
    if force or last is None or now - last[0] > SYNC_INTERVAL_S:
        path = _active_path(role)
        registry.ensure_active(role, path)
        with _lock:
            _synced[role] = (now, path)
    return registry


def model_get(role: str) -> Any:
    """The loaded model serving ``role`` in this process (see ``ml.registry``)."""
    return registry_sync(role).get(role)


def registry_error(role: str) -> str | None:
    """Why this process could not switch ``role`` to its promoted version, if it could not."""
    return default_registry().last_error(role)


def serving_reset() -> None:
    """Forgets sync times (tests, after a promotion in the same process)."""
    with _lock:
        _synced.clear()
