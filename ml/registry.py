"""Named roles -> loaded, versioned models: lazy, thread-safe, one load per process.

A role (``embedder``, ``chat-lm``, ``intent``, ``sentiment``, ``ner``) points at one active
artifact directory (see ``ml.artifacts``). ``get(role)`` loads it on first use and keeps it;
``activate(role, path)`` hot-swaps to another version without a restart: the new version is
loaded first and only then replaces the old one, so a missing or corrupt artifact leaves the
previous version serving and records why. At most ``max_loaded`` models stay in memory; the
least recently used one is dropped beyond that.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.artifacts import ArtifactError, Manifest, read_manifest

log = logging.getLogger(__name__)

ROLES = ("embedder", "chat-lm", "intent", "sentiment", "ner")

# kind -> "module:function"; imported lazily so that ``import ml.registry`` stays cheap.
# Each loader is ``load(path: Path, manifest: Manifest, registry: Registry) -> model``.
LOADERS: dict[str, str] = {
    "sentence-transformer": "ml.embeddings:load_embedder",
    "hf-classifier": "ml.sequence_classifier:load_sequence_classifier",
    "lora-classifier": "ml.sequence_classifier:load_sequence_classifier",
    "fewshot-classifier": "ml.classify:load_fewshot_classifier",
    "zeroshot-classifier": "ml.classify:load_zeroshot_classifier",
    "causal-lm": "ml.generate:load_chat_lm",
    "lora-causal-lm": "ml.generate:load_chat_lm",
    "spacy": "ml.entities:load_ner",
}


class ModelUnavailable(Exception):
    """No version of a role can be served (none configured, or every load failed)."""


@dataclass(frozen=True)
class ActiveVersion:
    """The version a role serves: its id, directory and manifest."""

    role: str
    version: str
    path: Path
    manifest: Manifest


def _resolve_loader(kind: str) -> Callable[[Path, Manifest, Registry], Any]:
    try:
        target = LOADERS[kind]
    except KeyError as exc:
        raise ArtifactError(f"no loader for artifact kind {kind!r}") from exc
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


class Registry:
    """Process-wide map of roles to loaded models.

    Args:
        defaults: role -> callable returning the directory of the bundled default
            (called lazily, only when a role has no explicit active version).
        max_loaded: how many models may stay loaded at once (LRU beyond that).
        retry_after_s: after a failed activation, how long before the same version is
            tried again (so a corrupt artifact does not cost a load attempt per request).
    """

    def __init__(
        self,
        defaults: dict[str, Callable[[], Path]] | None = None,
        max_loaded: int | None = None,
        retry_after_s: float = 60.0,
    ) -> None:
        self._defaults = dict(defaults or {})
        self._max_loaded = max_loaded or int(os.environ.get("TRELLIS_MAX_LOADED_MODELS", "6"))
        self._retry_after_s = retry_after_s
        self._lock = threading.RLock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._active: dict[str, ActiveVersion] = {}
        self._loaded: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._errors: dict[str, tuple[str, str, float]] = {}  # role -> (version, why, when)

    # -- configuration -------------------------------------------------------------
    def set_default(self, role: str, locate: Callable[[], Path]) -> None:
        """Sets how to find the bundled default artifact of ``role``."""
        with self._lock:
            self._defaults[role] = locate

    def activate(self, role: str, path: Path | str, *, eager: bool = True) -> ActiveVersion:
        """Makes the artifact at ``path`` the active version of ``role`` (hot swap).

        With ``eager`` the model is loaded before the switch, so a broken artifact raises
        and the previous version keeps serving.

        Raises:
            ArtifactError: the artifact is missing, of the wrong role, or fails to load.
        """
        path = Path(path)
        try:
            manifest = read_manifest(path)
            if manifest.role != role:
                raise ArtifactError(f"artifact at {path} is for role {manifest.role!r}, not {role!r}")
            candidate = ActiveVersion(role, manifest.version, path, manifest)
            if eager:
                self._load(candidate)
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._errors[role] = (str(path), why, time.monotonic())
            log.error("activating %s from %s failed, keeping previous version: %s", role, path, why)
            if isinstance(exc, ArtifactError):
                raise
            raise ArtifactError(why) from exc
        with self._lock:
            self._active[role] = candidate
            self._errors.pop(role, None)
        log.info("role %s now serves %s", role, candidate.version)
        return candidate

    def ensure_active(self, role: str, path: Path | str | None) -> None:
        """Cheap per-request sync with the version another process promoted.

        Activates ``path`` if it differs from what this process serves; a failure is
        logged, remembered for ``retry_after_s`` and the current version keeps serving.
        ``None`` means "the bundled default".
        """
        with self._lock:
            current = self._active.get(role)
            if path is None:
                if current is not None and current.version == "default":
                    return
                if current is not None:
                    self._active.pop(role)
                return
            path = Path(path)
            if current is not None and current.path == path:
                return
            failed = self._errors.get(role)
            if failed and failed[0] == str(path) and time.monotonic() - failed[2] < self._retry_after_s:
                return
        try:
            self.activate(role, path)
        except ArtifactError:
            pass  # logged and recorded in activate(); previous version keeps serving

    # -- serving -------------------------------------------------------------------
    def get(self, role: str) -> Any:
        """Returns the loaded model serving ``role``, loading it on first use.

        Raises:
            ModelUnavailable: no version is configured or the default fails to load.
        """
        active = self.active(role)
        return self._load(active)

    def ready(self, role: str) -> tuple[ActiveVersion, Any] | None:
        """The active version of ``role`` and its loaded model if both are already in memory
        (no disk read, no load: safe on an event loop); None otherwise (call ``get``)."""
        with self._lock:
            active = self._active.get(role)
            if active is None:
                return None
            model = self._loaded.get((role, str(active.path)))
        return None if model is None else (active, model)

    def active(self, role: str) -> ActiveVersion:
        """The version ``role`` serves now (the bundled default if none was activated)."""
        with self._lock:
            current = self._active.get(role)
            if current is not None:
                return current
            locate = self._defaults.get(role)
        if locate is None:
            raise ModelUnavailable(f"no model configured for role {role!r}")
        try:
            path = Path(locate())
            manifest = read_manifest(path)
        except Exception as exc:
            raise ModelUnavailable(f"default model for {role!r} unavailable: {exc}") from exc
        default = ActiveVersion(role, manifest.version, path, manifest)
        with self._lock:
            return self._active.setdefault(role, default)

    def last_error(self, role: str) -> str | None:
        """Why the latest activation of ``role`` failed, if it did."""
        with self._lock:
            failed = self._errors.get(role)
        return None if failed is None else f"{failed[0]}: {failed[1]}"

    def loaded(self) -> list[tuple[str, str]]:
        """(role, version) pairs in memory, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def unload(self, role: str | None = None) -> None:
        """Drops loaded models (all, or those of one role)."""
        with self._lock:
            for key in [k for k in self._loaded if role is None or k[0] == role]:
                del self._loaded[key]

    def load_artifact(self, path: Path | str) -> Any:
        """Loads any artifact directory without making it active (evaluation, comparison)."""
        path = Path(path)
        manifest = read_manifest(path)
        return self._load(ActiveVersion(manifest.role, manifest.version, path, manifest))

    def _load(self, active: ActiveVersion) -> Any:
        key = (active.role, str(active.path))
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            load_lock = self._load_locks.setdefault(str(active.path), threading.Lock())
        with load_lock:  # one load per artifact per process, other callers wait for it
            with self._lock:
                if key in self._loaded:
                    return self._loaded[key]
            if not active.path.exists():
                raise ArtifactError(f"artifact directory {active.path} is missing")
            loader = _resolve_loader(active.manifest.kind)
            started = time.perf_counter()
            model = loader(active.path, active.manifest, self)
            log.info("loaded %s %s in %.2fs", active.role, active.version, time.perf_counter() - started)
            with self._lock:
                self._loaded[key] = model
                while len(self._loaded) > self._max_loaded:
                    evicted, _ = self._loaded.popitem(last=False)
                    log.info("unloaded %s (least recently used)", evicted)
            return model


_registry: Registry | None = None
_registry_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry with the bundled defaults (see ``ml.defaults``)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            from ml.defaults import bundled_defaults

            _registry = Registry(defaults=bundled_defaults())
        return _registry


def get(role: str) -> Any:
    """Shortcut: ``default_registry().get(role)``."""
    return default_registry().get(role)
