"""Fitting the recommenders (a task) and loading what was fitted (every process).

``recommenders_fit`` reads the events and the catalogue, fits each recommender of
``ml.recommend`` and saves them into a fresh folder under ``TRELLIS_RECOMMEND_DIR/models``;
then the ``CURRENT`` file is replaced (temp file + ``os.replace``) to point at it. Readers
(``engine_get``) look at ``CURRENT`` every few seconds and load a new folder when it
changes, so a request never fits anything and always sees one complete fit.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from apps.recommend.models import Event, Item
from apps.recommend.services.blends import MEMBERS
from ml.recommend.served import member_build
from ml.recommend.types import Catalogue, Interaction, Recommender

log = logging.getLogger(__name__)

MAX_FIT_EVENTS = 2_000_000  # newest events a fit reads (~200 MB of Interaction objects)
RELOAD_CHECK_S = 2.0  # a new fit reaches every process within this many seconds
KEEP_FITS = 3  # fitted folders kept on disk (the current one and two before it)


def models_dir() -> Path:
    return Path(settings.TRELLIS_RECOMMEND_DIR) / "models"


def interaction_of(user: str, external_id: str, kind: str, ts: Any, value: float) -> Interaction:
    weight = max(0.0, min(value, 5.0)) / 5.0 if kind == "rating" else 1.0
    return Interaction(user=user, item=external_id, kind=kind, ts=ts.timestamp(), weight=weight)


def interactions_load(*, before: Any = None, kinds: tuple[str, ...] | None = None,
                      limit: int = MAX_FIT_EVENTS) -> list[Interaction]:
    """Events as interactions, oldest first (anonymous ones keyed ``session:<key>``)."""
    queryset = Event.objects.all()
    if before is not None:
        queryset = queryset.filter(ts__lt=before)
    if kinds:
        queryset = queryset.filter(kind__in=kinds)
    rows = queryset.order_by("-ts", "-id").values_list("user_key", "session_key", "item__external_id", "kind",
                                                       "ts", "value")[:limit]
    out = [interaction_of(user or f"session:{session}", item, kind, ts, value)
           for user, session, item, kind, ts, value in rows.iterator(5000)]
    out.reverse()
    return out


def catalogue_load() -> Catalogue:
    """Every item, with its vector where it has one (zeros where not, so it is never similar)."""
    ids, categories, available, vectors = [], {}, set(), []
    dim = 0
    for external_id, category, is_available, blob in Item.objects.order_by("pk").values_list(
            "external_id", "category", "available", "embedding").iterator(5000):
        ids.append(external_id)
        if category:
            categories[external_id] = category
        if is_available:
            available.add(external_id)
        vector = np.frombuffer(bytes(blob), dtype=np.float32) if blob is not None else None
        dim = dim or (len(vector) if vector is not None else 0)
        vectors.append(vector)
    embeddings = None
    if dim and ids:
        embeddings = np.zeros((len(ids), dim), dtype=np.float32)
        for row, vector in enumerate(vectors):
            if vector is not None and len(vector) == dim:
                embeddings[row] = vector
    return Catalogue(items=ids, categories=categories, available=available, embeddings=embeddings)


def _write_current(name: str) -> None:
    target = models_dir() / "CURRENT"
    fd, tmp = tempfile.mkstemp(dir=models_dir(), prefix=".CURRENT-")
    with os.fdopen(fd, "w") as out:
        out.write(name)
    os.replace(tmp, target)


def recommenders_fit() -> dict[str, Any]:
    """Fits every recommender on the events and swaps the fitted set in atomically."""
    interactions = interactions_load()
    catalogue = catalogue_load()
    models_dir().mkdir(parents=True, exist_ok=True)
    name = timezone.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    staging = models_dir() / f".{name}"
    staging.mkdir()
    timings = {}
    try:
        failed = {}
        for member in MEMBERS:
            started = time.perf_counter()
            recommender = member_build(member)
            try:
                recommender.fit(interactions, catalogue)
            except (ValueError, RuntimeError) as exc:  # e.g. ALS with no users yet: the others still serve
                log.warning("recommender %s could not be fitted: %s", member, exc)
                failed[member] = str(exc)[:200]
                continue
            recommender.save(staging / member)
            timings[member] = round(time.perf_counter() - started, 3)
        manifest = {"fitted_at": timezone.now().isoformat(), "events": len(interactions), "failed": failed,
                    "items": len(catalogue), "users": len({i.user for i in interactions}), "seconds": timings}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
        os.replace(staging, models_dir() / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _write_current(name)
    _prune(keep=name)
    engine_cache.reset()  # this process sees it at once; others within RELOAD_CHECK_S
    log.info("recommenders fitted: %s", manifest)
    return {"name": name, **manifest}


def _prune(keep: str) -> None:
    fits = sorted(p for p in models_dir().iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in fits[:-KEEP_FITS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


@dataclass
class FittedSet:
    """What one fit produced, loaded: the members by name and the fit's manifest."""

    name: str
    members: dict[str, Recommender]
    manifest: dict[str, Any]
    blends: dict[tuple[Any, float], Recommender] = field(default_factory=dict)

    def blend(self, weights: Mapping[str, float], diversity: float = 0.0) -> Recommender:
        """The blend of the members with ``weights`` (cached per weights and diversity).

        ``diversity`` in [0, 1] is how much relevance MMR gives up for variety (0: none).
        """
        chosen = {n: float(w) for n, w in sorted(weights.items()) if w > 0 and n in self.members}
        key = (tuple(chosen.items()), float(diversity))
        if key not in self.blends:
            self.blends[key] = blend_of(self.members, weights, diversity)
        return self.blends[key]


def blend_of(members: Mapping[str, Recommender], weights: Mapping[str, float], diversity: float = 0.0) -> Recommender:
    """The blend of fitted ``members`` with ``weights`` (those weighing 0 or not fitted are left out).

    Raises:
        LookupError: no fitted member can serve (not even the popularity floor).
    """
    from ml.recommend.blend import Blend
    from ml.recommend.diversity import Diversity

    chosen = {n: float(w) for n, w in sorted(weights.items()) if w > 0 and n in members}
    if not chosen:  # every weighted member failed to fit: popularity is the floor
        chosen = {n: 1.0 for n in ("popularity",) if n in members}
    if not chosen:
        raise LookupError("no fitted recommender can serve these weights")
    mix = Diversity(mmr_lambda=1.0 - diversity) if diversity > 0 else None
    # The members are fitted already: of_fitted shares their catalogue, refits nothing.
    return Blend.of_fitted(chosen, [members[n] for n in chosen], diversity=mix)


def _load(name: str) -> FittedSet:
    from ml.recommend import load

    folder = models_dir() / name
    members = {member: load(folder / member) for member in MEMBERS if (folder / member).exists()}
    manifest = json.loads((folder / "manifest.json").read_text())
    return FittedSet(name=name, members=members, manifest=manifest)


class _EngineCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fitted: FittedSet | None = None
        self._checked = 0.0

    def get(self) -> FittedSet | None:
        now = time.monotonic()
        with self._lock:
            if self._fitted is not None and now - self._checked < RELOAD_CHECK_S:
                return self._fitted
            self._checked = now
            try:
                name = (models_dir() / "CURRENT").read_text().strip()
            except FileNotFoundError:
                self._fitted = None
                return None
            if self._fitted is None or self._fitted.name != name:
                try:
                    self._fitted = _load(name)
                except (OSError, ValueError, KeyError):
                    log.warning("could not load fitted recommenders %s", name, exc_info=True)
            return self._fitted

    def reset(self) -> None:
        with self._lock:
            self._fitted, self._checked = None, 0.0


engine_cache = _EngineCache()


def engine_get() -> FittedSet | None:
    """The fitted recommenders of this process (None before the first fit)."""
    return engine_cache.get()
