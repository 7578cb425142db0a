"""Atomic, versioned directories for fitted recommender state.

A Celery task fits and calls ``save(directory)``; web processes call ``load(directory)``.
Each save writes a complete new version folder beside the old ones, then atomically replaces
the ``CURRENT`` pointer file (temp file + ``os.replace``), so a reader sees the old version
or the new one, never a half-written one. The newest ``KEEP_VERSIONS`` versions are kept so
a reader that resolved the pointer just before a save can still finish loading.

State is JSON plus ``.npz`` arrays (read with ``allow_pickle=False``): nothing on disk can
run code when loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
from scipy import sparse

POINTER = "CURRENT"
KEEP_VERSIONS = 2
STATE_FILE = "state.json"
ARRAYS_FILE = "arrays.npz"


def save_versioned(directory: Path | str, write: Callable[[Path], None]) -> Path:
    """Writes a new version with ``write(folder)`` and makes it current.

    Args:
        directory: the recommender's home, e.g. ``var/recommend/blend``.
        write: fills the (empty, private) folder it is given.

    Returns:
        The new version folder.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".staging-"))
    try:
        write(staging)
        # Nanosecond stamps sort in save order, which pruning relies on.
        version = directory / f"v{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        os.rename(staging, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _write_pointer(directory, version.name)
    _prune(directory, keep=version.name)
    return version


def current_version(directory: Path | str) -> Path:
    """The version folder ``CURRENT`` points at.

    Raises:
        FileNotFoundError: nothing saved there yet.
    """
    directory = Path(directory)
    pointer = directory / POINTER
    if not pointer.is_file():
        raise FileNotFoundError(f"no saved recommender at {directory}")
    version = directory / pointer.read_text(encoding="utf-8").strip()
    if not version.is_dir() or version.parent != directory:
        raise FileNotFoundError(f"{pointer} points at a missing version {version.name!r}")
    return version


def _write_pointer(directory: Path, name: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pointer-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(name)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / POINTER)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prune(directory: Path, keep: str) -> None:
    versions = sorted((p for p in directory.iterdir() if p.is_dir() and p.name.startswith("v")), key=lambda p: p.name)
    old = [p for p in versions if p.name != keep][: max(0, len(versions) - KEEP_VERSIONS)]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)


def write_state(folder: Path, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """``state.json`` and ``arrays.npz`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
    cast(Any, np.savez)(folder / ARRAYS_FILE, **arrays)  # numpy's stub mistypes **arrays


def read_state(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What ``write_state`` wrote."""
    state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return state, arrays


def csr_to_arrays(prefix: str, matrix: sparse.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays for ``write_state``."""
    return {
        f"{prefix}_data": matrix.data,
        f"{prefix}_indices": matrix.indices,
        f"{prefix}_indptr": matrix.indptr,
        f"{prefix}_shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> sparse.csr_matrix:
    """Inverse of ``csr_to_arrays``."""
    shape = tuple(int(x) for x in arrays[f"{prefix}_shape"])
    return sparse.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape
    )
