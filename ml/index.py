"""FAISS vector index shared by chat (KB chunks) and recommend (items).

Vectors are L2-normalised on the way in, so the inner product FAISS ranks by is the
cosine similarity. Ids are the caller's int64 ids (database primary keys). Three kinds:

- ``flat``: exact search; best below ~50k vectors (a 384-d query over 50k vectors takes
  ~2 ms on one core).
- ``hnsw``: graph index (M=32), sub-linear search, no training. FAISS cannot delete from
  an HNSW graph, so removed or replaced vectors become tombstones that searches skip
  (``IDSelector``); ``save``/``compact`` rebuild the graph without them.
- ``ivf``: inverted lists over k-means cells, trained on the vectors given to ``build``
  (or the first ``add``); supports real deletion.

A task builds the index and writes it with ``build_atomic`` (temp file + ``os.replace``),
so a reader's ``VectorIndex.load`` sees either the old file or the new one, never a part.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ml import devices
from ml.artifacts import atomic_write

KINDS = ("flat", "hnsw", "ivf", "auto")
AUTO_HNSW_FROM = 50_000  # vectors; below this exact search is fast enough (see module doc)
HNSW_M = 32  # graph degree: recall >0.95 at efSearch 64 for 384-d text vectors
DEFAULT_EF_SEARCH = 64
DEFAULT_EF_CONSTRUCTION = 80
SIDECAR_SUFFIX = ".json"


@lru_cache(maxsize=1)
def _cap_threads() -> int:
    # FAISS uses OpenMP, outside torch's cap: give it the same share of the cores.
    threads = devices.current().threads
    faiss.omp_set_num_threads(threads)
    return threads


def _as_vectors(vectors: Any, dim: int) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {np.shape(vectors)}")
    if not np.isfinite(array).all():
        raise ValueError("vectors contain NaN or infinity")
    array = array.copy()  # normalise a private copy, never the caller's array
    faiss.normalize_L2(array)
    return array


def _as_ids(ids: Any) -> np.ndarray:
    array = np.asarray(ids)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"ids must be a 1-d sequence of integers, got {array.dtype} {array.shape}")
    if (array < 0).any():
        raise ValueError("ids must be >= 0 (FAISS uses -1 for 'no result')")
    return array.astype(np.int64)


def _ivf_cells(n: int) -> int:
    # FAISS wants >= 39 training points per cell; 4*sqrt(n) cells is its usual guidance.
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


class VectorIndex:
    """Inner-product index over unit vectors with the caller's int64 ids.

    Args:
        dim: vector size (384 for the default embedder).
        kind: ``flat``, ``hnsw``, ``ivf`` or ``auto`` (flat below 50,000 ``expected``
            vectors, hnsw from there).
        expected: how many vectors are coming; only used to resolve ``auto``.
        ef_search: HNSW candidate list size per query (higher: better recall, slower).
        nprobe: IVF cells visited per query; default an eighth of the cells.

    Thread safety: one lock serialises mutations and searches of one instance.
    """

    def __init__(
        self,
        dim: int,
        kind: str = "auto",
        *,
        expected: int = 0,
        ef_search: int = DEFAULT_EF_SEARCH,
        nprobe: int | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        _cap_threads()
        self.dim = dim
        self.kind = ("hnsw" if expected >= AUTO_HNSW_FROM else "flat") if kind == "auto" else kind
        self.ef_search = ef_search
        self._nprobe = nprobe
        self._lock = threading.RLock()
        self._index: Any = None  # IVF is created when it sees training data
        # HNSW bookkeeping: external id of each graph position, live id -> position, tombstones.
        self._positions = np.empty(0, dtype=np.int64)
        self._where: dict[int, int] = {}
        self._dead: set[int] = set()
        self._search_params: Any = None
        if self.kind == "flat":
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif self.kind == "hnsw":
            self._index = self._new_hnsw()

    # -- building --------------------------------------------------------------------
    def _new_hnsw(self) -> Any:
        graph = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = DEFAULT_EF_CONSTRUCTION
        return faiss.IndexIDMap2(graph)

    def _train_ivf(self, vectors: np.ndarray) -> None:
        cells = _ivf_cells(len(vectors))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, cells, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        # A hash table id -> entry makes add_with_ids, remove_ids and reconstruct work
        # with arbitrary (sparse) database ids.
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        index.nprobe = self._nprobe or max(1, cells // 8)
        self._index = index

    @classmethod
    def build(
        cls, ids: Sequence[int] | np.ndarray, vectors: np.ndarray, kind: str = "auto", **options: Any
    ) -> VectorIndex:
        """A new index holding ``vectors`` (IVF is trained on them).

        Args:
            ids: one int64 id per vector.
            vectors: ``(n, dim)`` array.
            kind: see the class.
            **options: ``ef_search``, ``nprobe``.

        Returns:
            The index.
        """
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"expected a 2-d array of vectors, got shape {array.shape}")
        index = cls(array.shape[1], kind, expected=len(array), **options)
        index.add(ids, array)
        return index

    # -- mutation --------------------------------------------------------------------
    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Adds vectors; an id already present is replaced (last one wins within a call).

        Args:
            ids: one non-negative int64 id per vector.
            vectors: ``(n, dim)`` array; normalised here.

        Raises:
            ValueError: wrong dims, count mismatch, bad ids or non-finite values.
        """
        id_array = _as_ids(ids)
        raw = np.asarray(vectors, dtype=np.float32)
        count = 0 if raw.size == 0 else 1 if raw.ndim == 1 else len(raw)
        if len(id_array) != count:
            raise ValueError(f"{len(id_array)} ids but {count} vectors")
        if count == 0:
            return
        array = _as_vectors(raw, self.dim)
        _, last = np.unique(id_array[::-1], return_index=True)
        if len(last) != len(id_array):
            keep = np.sort(len(id_array) - 1 - last)
            id_array, array = id_array[keep], array[keep]
        with self._lock:
            if self._index is None:
                self._train_ivf(array)
            if self.kind == "hnsw":
                self._tombstone(id_array)
                start = len(self._positions)
                self._index.add_with_ids(array, id_array)
                self._positions = np.concatenate([self._positions, id_array])
                self._where.update(zip(id_array.tolist(), range(start, start + len(id_array)), strict=True))
            else:
                self._remove_native(id_array)
                self._index.add_with_ids(array, id_array)

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Removes ids (absent ones are ignored).

        Returns:
            How many vectors were removed.
        """
        id_array = _as_ids(ids)
        with self._lock:
            if self._index is None or len(id_array) == 0:
                return 0
            if self.kind == "hnsw":
                return self._tombstone(id_array)
            return self._remove_native(id_array)

    def _remove_native(self, ids: np.ndarray) -> int:
        if self.kind == "ivf":
            # IVF's id hash table deletes only through an explicit id array.
            ids = np.ascontiguousarray(ids)
            selector = faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))
        else:
            selector = faiss.IDSelectorBatch(ids)
        return int(self._index.remove_ids(selector))

    def _tombstone(self, ids: np.ndarray) -> int:
        removed = 0
        for item in ids.tolist():
            position = self._where.pop(item, None)
            if position is not None:
                self._dead.add(position)
                removed += 1
        if removed:
            self._search_params = None
        return removed

    def compact(self) -> None:
        """Rebuilds an HNSW graph without its tombstones (no-op for other kinds).

        Takes about as long as building the index afresh; ``save`` calls it.
        """
        with self._lock:
            if self.kind != "hnsw" or not self._dead:
                return
            live = np.array(sorted(self._where.values()), dtype=np.int64)
            graph = faiss.downcast_index(self._index.index)
            vectors = graph.reconstruct_n(0, graph.ntotal)[live] if len(live) else np.empty((0, self.dim), np.float32)
            ids = self._positions[live]
            self._index = self._new_hnsw()
            self._index.add_with_ids(vectors, ids)
            self._positions = ids
            self._where = dict(zip(ids.tolist(), range(len(ids)), strict=True))
            self._dead = set()
            self._search_params = None

    # -- reading ---------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            if self.kind == "hnsw":
                return len(self._where)
            return 0 if self._index is None else int(self._index.ntotal)

    @property
    def nprobe(self) -> int | None:
        """IVF cells visited per query (None for other kinds or before training)."""
        return int(self._index.nprobe) if self.kind == "ivf" and self._index is not None else self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = value
        if self.kind == "ivf" and self._index is not None:
            self._index.nprobe = value

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """The ``k`` most similar vectors for each query.

        Args:
            queries: ``(n, dim)`` or one ``(dim,)`` vector; normalised here.
            k: results per query; fewer come back when the index holds fewer.

        Returns:
            Per query, ``(id, cosine similarity)`` pairs, most similar first.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        array = _as_vectors(queries, self.dim)
        with self._lock:
            live = len(self)
            if live == 0:
                return [[] for _ in range(len(array))]
            k = min(k, live)
            if self.kind == "hnsw":
                scores, labels = self._search_hnsw(array, k)
            else:
                scores, labels = self._index.search(array, k)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(labels.tolist(), scores.tolist(), strict=True)
        ]

    def _search_hnsw(self, array: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        graph = self._index.index  # search positions directly: a replaced id has two
        if self._search_params is None:
            params = faiss.SearchParametersHNSW()
            if self._dead:
                batch = faiss.IDSelectorBatch(np.fromiter(self._dead, dtype=np.int64))
                params.sel = faiss.IDSelectorNot(batch)
                params.keepalive = (batch, params.sel)  # SWIG does not own the selectors
            self._search_params = params
        self._search_params.efSearch = max(self.ef_search, k)
        scores, positions = graph.search(array, k, params=self._search_params)
        labels = np.where(positions >= 0, self._positions[np.maximum(positions, 0)], -1)
        return scores, labels

    # -- persistence -----------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        """Writes the index file and ``<path>.json`` (dim, kind, count), each atomically.

        HNSW tombstones are compacted away first, so a saved file holds live vectors only.

        Args:
            path: the index file, e.g. ``var/indexes/items.faiss``.

        Returns:
            The index path.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._index is None:
                raise ValueError("an IVF index has nothing to save before its first vectors")
            self.compact()
            _atomic_write(path, lambda tmp: faiss.write_index(self._index, tmp))
            meta = {
                "dim": self.dim,
                "kind": self.kind,
                "count": len(self),
                "metric": "inner_product",
                "ef_search": self.ef_search,
                "nprobe": self.nprobe,
            }
        _atomic_write(sidecar_path(path), lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
        return path

    @classmethod
    def load(cls, path: Path | str) -> VectorIndex:
        """Reads an index written by ``save``/``build_atomic``.

        The kind and size come from the index file itself; the sidecar only adds search
        settings, so a reader that races a writer between the two renames still gets a
        consistent index.

        Raises:
            FileNotFoundError: no index at ``path``.
            ValueError: the file is not an index this class writes.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no vector index at {path}")
        meta: dict[str, Any] = {}
        try:
            meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # settings fall back to defaults
        raw = faiss.read_index(str(path))
        if isinstance(raw, faiss.IndexIVFFlat):
            kind, inner = "ivf", raw
        elif isinstance(raw, faiss.IndexIDMap2):
            inner = faiss.downcast_index(raw.index)
            kind = "hnsw" if isinstance(inner, faiss.IndexHNSWFlat) else "flat"
        else:
            raise ValueError(f"{path} holds a {type(raw).__name__}, not a VectorIndex file")
        index = cls(raw.d, kind, ef_search=int(meta.get("ef_search") or DEFAULT_EF_SEARCH))
        index._index = raw
        if kind == "hnsw":
            index._positions = faiss.vector_to_array(raw.id_map).astype(np.int64)
            index._where = dict(zip(index._positions.tolist(), range(raw.ntotal), strict=True))
        return index

    def __repr__(self) -> str:
        return f"VectorIndex(kind={self.kind!r}, dim={self.dim}, count={len(self)})"


def sidecar_path(path: Path | str) -> Path:
    """``items.faiss`` -> ``items.faiss.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _atomic_write(target: Path, write: Any) -> None:
    """``write(tmp_name)`` then rename over ``target`` (``ml.artifacts.atomic_write``)."""
    atomic_write(target, lambda tmp: write(str(tmp)))


def build_atomic(
    path: Path | str, ids: Sequence[int] | np.ndarray, vectors: np.ndarray, kind: str = "auto", **options: Any
) -> VectorIndex:
    """Builds an index and swaps it in at ``path`` with ``os.replace``.

    The new file is written beside the old one and renamed over it, so readers loading
    ``path`` at any moment get a complete index (old or new).

    Args:
        path: the index file.
        ids: one int64 id per vector.
        vectors: ``(n, dim)`` array.
        kind: ``flat``, ``hnsw``, ``ivf`` or ``auto``.
        **options: ``ef_search``, ``nprobe``.

    Returns:
        The new index (already saved).
    """
    index = VectorIndex.build(ids, vectors, kind, **options)
    index.save(path)
    return index
