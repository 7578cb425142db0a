"""How apps get a model: the registry, kept in step with the version promoted in the DB.

Every process (ASGI servers, Celery workers) asks ``model_get(role)``; it reads the active
version from the database at most every ``SYNC_INTERVAL_S`` seconds and hot-swaps the
process's registry when another process promoted or rolled back, with no restart. When the
active version's manifest changed on disk (an admin edited its abstention threshold in another
process), the loaded copy takes the new calibration and threshold, again with no reload.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from ml.artifacts import MANIFEST, ArtifactError
from ml.registry import Registry, default_registry

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 2.0  # promotion reaches every process within this many seconds

# role -> (when, artifact path or None, the manifest's mtime in ns or None)
_synced: dict[str, tuple[float, str | None, int | None]] = {}
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
        stamp = _manifest_stamp(path)
        if last is not None and path is not None and last[1] == path and last[2] != stamp:
            _manifest_reload(registry, role, path)
        with _lock:
            _synced[role] = (now, path, stamp)
    return registry


def _manifest_stamp(path: str | None) -> int | None:
    try:
        return (Path(path) / MANIFEST).stat().st_mtime_ns if path else None
    except OSError:
        return None


def _manifest_reload(registry: Registry, role: str, path: str) -> None:
    """The active version's manifest was rewritten (calibration or threshold): apply it."""
    from ml.abstention import reload_calibration

    try:
        if (role, str(Path(path))) in registry.loaded():
            reload_calibration(registry, path)  # the loaded copy, in place: no model reload
        registry.activate(role, path, eager=False)  # the active entry keeps the new manifest
    except (ArtifactError, OSError, ValueError) as exc:
        log.error("could not apply the new manifest of %s (%s): %s", role, path, exc)


def model_get_ready(role: str) -> tuple[str, Any] | None:
    """The version id and loaded model serving ``role`` when using them needs no I/O: the
    registry synced with the database in the last ``SYNC_INTERVAL_S`` and the version is in
    memory. None otherwise: call ``model_get`` off the event loop (it syncs and loads)."""
    with _lock:
        last = _synced.get(role)
    if last is None or time.monotonic() - last[0] > SYNC_INTERVAL_S:
        return None
    ready = default_registry().ready(role)
    return None if ready is None else (ready[0].version, ready[1])


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
