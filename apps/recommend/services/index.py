"""Item embeddings and the FAISS index of the catalogue.

A task embeds items with the ``embedder`` (vectors kept on the item row) and writes the index
with ``ml.index`` under ``TRELLIS_RECOMMEND_DIR``; every write is a temp file renamed over the
old one, so readers see the old index or the new one. Web processes load the file and reload
it when it changes; a request never builds it. Ids in the index are ``Item`` primary keys.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from apps.mlops.services.serving import model_get
from apps.recommend.models import Item
from ml.index import VectorIndex, build_atomic

log = logging.getLogger(__name__)

EMBED_BATCH = 256  # items per embedder call and per DB write: ~0.5 s of MiniLM on one core
RELOAD_CHECK_S = 1.0  # how often a reader looks at the index file for a newer version
FLAT_BELOW = 50_000  # items; above, HNSW (recall measured against Flat in bench/bench_recommend_index.py)


def index_path() -> Path:
    return Path(settings.TRELLIS_RECOMMEND_DIR) / "items.faiss"


def _embedder() -> Any:
    return model_get("embedder")


def vector_of(item: Item) -> np.ndarray | None:
    if item.embedding is None:
        return None
    return np.frombuffer(bytes(item.embedding), dtype=np.float32)


def items_embed(items: list[Item]) -> int:
    """Embeds ``items`` (their text) and stores the vectors on the rows."""
    if not items:
        return 0
    vectors = _embedder().embed([item.text for item in items], batch_size=64)
    now = timezone.now()
    for item, vector in zip(items, vectors, strict=True):
        item.embedding = np.asarray(vector, dtype=np.float32).tobytes()
        item.embedded_at = now
    Item.objects.bulk_update(items, ["embedding", "embedded_at"], batch_size=EMBED_BATCH)
    return len(items)


def items_embed_missing(ids: Iterable[int] | None = None) -> int:
    """Embeds items without a vector (all of them, or those among ``ids``)."""
    done = 0
    queryset = Item.objects.filter(embedding__isnull=True).order_by("pk")
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    while True:
        batch = list(queryset[:EMBED_BATCH])
        if not batch:
            return done
        done += items_embed(batch)


def _all_vectors() -> tuple[np.ndarray, np.ndarray]:
    ids, vectors = [], []
    for pk, blob in Item.objects.exclude(embedding__isnull=True).values_list("pk", "embedding").iterator(2000):
        ids.append(pk)
        vectors.append(np.frombuffer(bytes(blob), dtype=np.float32))
    if not vectors:
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
    return np.asarray(ids, dtype=np.int64), np.vstack(vectors)


@contextmanager
def _writer_lock() -> Iterator[None]:
    """One writer at a time across processes (a full build and an incremental update may overlap)."""
    path = index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def item_index_build() -> dict[str, Any]:
    """Embeds what is missing and writes a fresh index of every embedded item (atomic swap)."""
    embedded = items_embed_missing()
    with _writer_lock():
        ids, vectors = _all_vectors()
        if len(ids) == 0:
            dim = _embedder().dim
            index = VectorIndex(dim, "flat")
            index.save(index_path())
        else:
            index = build_atomic(index_path(), ids, vectors, kind="flat" if len(ids) < FLAT_BELOW else "hnsw")
    item_index_cache.reset()  # this process sees it at once; others within RELOAD_CHECK_S
    log.info("item index built: %s vectors (%s newly embedded)", len(index), embedded)
    return {"count": len(index), "kind": index.kind, "embedded": embedded}


def item_index_update(item_ids: list[int]) -> dict[str, int]:
    """Adds, replaces or removes ``item_ids`` in the saved index (items that no longer exist
    are removed). Builds the whole index when there is none yet."""
    if not index_path().is_file():
        return item_index_build()
    embedded = items_embed_missing(item_ids)
    present = {
        pk: np.frombuffer(bytes(blob), dtype=np.float32)
        for pk, blob in Item.objects.filter(pk__in=item_ids).exclude(embedding__isnull=True)
        .values_list("pk", "embedding")
    }
    gone = [pk for pk in item_ids if pk not in present]
    with _writer_lock():
        index = VectorIndex.load(index_path())
        removed = index.remove(gone) if gone else 0
        if present:
            index.add(list(present), np.vstack(list(present.values())))
        index.save(index_path())
    item_index_cache.reset()
    return {"count": len(index), "added": len(present), "removed": removed, "embedded": embedded}


class _IndexCache:
    """The process's loaded index, reloaded when the file on disk is replaced."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: VectorIndex | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0

    def get(self) -> VectorIndex | None:
        now = time.monotonic()
        with self._lock:
            if self._index is not None and now - self._checked < RELOAD_CHECK_S:
                return self._index
            self._checked = now
            path = index_path()
            try:
                stat = path.stat()
            except FileNotFoundError:
                self._index, self._stamp = None, None
                return None
            stamp = (stat.st_mtime_ns, stat.st_ino)
            if stamp != self._stamp:
                try:
                    self._index = VectorIndex.load(path)
                    self._stamp = stamp
                except (OSError, ValueError, RuntimeError):
                    log.warning("could not load the item index at %s", path, exc_info=True)
            return self._index

    def reset(self) -> None:
        with self._lock:
            self._index, self._stamp, self._checked = None, None, 0.0


item_index_cache = _IndexCache()


def item_index_get() -> VectorIndex | None:
    """The loaded index (None before the first build)."""
    return item_index_cache.get()


def neighbours(item: Item, k: int) -> list[tuple[int, float]]:
    """``(item pk, cosine)`` of the ``k`` nearest items, the item itself left out."""
    index = item_index_get()
    vector = vector_of(item)
    if index is None or vector is None or len(index) == 0:
        return []
    return [(pk, score) for pk, score in index.search(vector, k + 1)[0] if pk != item.pk][:k]
