"""VectorIndex: ids, replace/remove, search, persistence, atomic swaps, the three kinds."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from ml.index import VectorIndex, build_atomic, sidecar_path

DIM = 32


def _unit(rows: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _clustered(rows: int, seed: int = 0, clusters: int = 50) -> np.ndarray:
    # Real embeddings cluster by topic; IVF and HNSW are built for that, not for uniform noise.
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM))
    vectors = centres[rng.integers(0, clusters, rows)] + 0.35 * rng.standard_normal((rows, DIM))
    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(params=["flat", "hnsw", "ivf"])
def kind(request) -> str:
    return request.param


def test_search_returns_ids_and_cosines_best_first(kind):
    vectors = _clustered(2_000)
    ids = np.arange(2_000) * 10 + 5  # sparse database ids
    index = VectorIndex.build(ids, vectors, kind)
    (hits,) = index.search(vectors[7], k=5)
    assert hits[0][0] == 75
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert len(index) == 2_000


def test_readding_an_id_replaces_it_and_remove_drops_it(kind):
    vectors = _clustered(1_000, seed=1)
    index = VectorIndex.build(np.arange(1_000), vectors, kind)
    # when id 3 gets the vector of id 500
    index.add([3], vectors[500:501])
    # then there is still one vector per id, and id 3 now matches that vector exactly
    assert len(index) == 1_000
    top = dict(index.search(vectors[500], k=3)[0])
    assert top[3] == pytest.approx(1.0, abs=1e-5) and top[500] == pytest.approx(1.0, abs=1e-5)
    assert all(i != 3 for i, _ in index.search(vectors[3], k=10)[0])
    # when ids are removed (one twice, one absent)
    assert index.remove([500, 500, 99_999]) == 1
    assert len(index) == 999
    assert all(i != 500 for i, _ in index.search(vectors[500], k=20)[0])


def test_save_and_load_round_trip(kind, tmp_path):
    vectors = _clustered(1_500, seed=2)
    index = VectorIndex.build(np.arange(1_500) + 1_000_000, vectors, kind)
    index.remove([1_000_000 + 4])
    index.add([1_000_000 + 8], vectors[9:10])
    path = index.save(tmp_path / "items.faiss")
    loaded = VectorIndex.load(path)
    meta = json.loads(sidecar_path(path).read_text())
    assert (loaded.kind, loaded.dim, len(loaded)) == (kind, DIM, 1_499)
    assert meta == {**meta, "dim": DIM, "kind": kind, "count": 1_499}
    queries = vectors[:20]
    assert loaded.search(queries, 5) == index.search(queries, 5)
    # a loaded index keeps accepting changes
    loaded.add([42], vectors[100:101])
    assert len(loaded) == 1_500


def test_small_index_returns_fewer_than_k():
    index = VectorIndex(DIM, "flat")
    assert index.search(_unit(2), 5) == [[], []]
    index.add([1, 2], _unit(2))
    assert [len(hits) for hits in index.search(_unit(3, seed=9), k=10)] == [2, 2, 2]


def test_vectors_are_normalised_so_scores_are_cosines():
    index = VectorIndex(DIM, "flat")
    vector = _unit(1)
    index.add([7], vector * 12.5)
    assert index.search(vector * 0.1, 1)[0][0][1] == pytest.approx(1.0, abs=1e-5)


def test_validation_errors_are_clear():
    index = VectorIndex(DIM, "flat")
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        index.add([1], np.ones((1, DIM + 1), np.float32))
    with pytest.raises(ValueError, match="2 ids but 3 vectors"):
        index.add([1, 2], _unit(3))
    with pytest.raises(ValueError, match="0 ids but 3 vectors"):
        index.add([], _unit(3))
    with pytest.raises(ValueError, match="integers"):
        index.add(["a"], _unit(1))
    with pytest.raises(ValueError, match=">= 0"):
        index.add([-1], _unit(1))
    with pytest.raises(ValueError, match="NaN"):
        index.add([1], np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        index.search(np.ones(DIM + 1, np.float32), 3)
    with pytest.raises(ValueError, match="kind"):
        VectorIndex(DIM, "annoy")
    with pytest.raises(FileNotFoundError):
        VectorIndex.load("/nonexistent/items.faiss")


def test_auto_picks_flat_for_small_and_hnsw_for_large():
    assert VectorIndex(DIM, "auto", expected=10).kind == "flat"
    assert VectorIndex(DIM, "auto", expected=50_000).kind == "hnsw"
    assert VectorIndex.build(np.arange(100), _unit(100)).kind == "flat"


@pytest.mark.parametrize(("kind", "min_recall"), [("hnsw", 0.9), ("ivf", 0.8)])
def test_approximate_kinds_recall_against_flat(kind, min_recall):
    # given a few thousand clustered vectors and queries near them
    vectors = _clustered(4_000, seed=3)
    queries = _clustered(100, seed=4)
    ids = np.arange(4_000)
    exact = VectorIndex.build(ids, vectors, "flat").search(queries, 10)
    approx = VectorIndex.build(ids, vectors, kind).search(queries, 10)
    # then recall@10 against exact search is high
    recall = np.mean([len({i for i, _ in a} & {i for i, _ in e}) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= min_recall


def test_hnsw_tombstones_are_compacted_on_save(tmp_path):
    vectors = _clustered(800, seed=5)
    index = VectorIndex.build(np.arange(800), vectors, "hnsw")
    index.remove(np.arange(0, 800, 2))
    index.add([1], vectors[2:3])
    assert len(index) == 400
    index.save(tmp_path / "h.faiss")
    loaded = VectorIndex.load(tmp_path / "h.faiss")
    assert len(loaded) == 400
    assert loaded._index.ntotal == 400  # the graph itself no longer holds dead vectors
    assert loaded.search(vectors[2], 1)[0][0][0] == 1


def test_build_atomic_swaps_without_a_partial_file(tmp_path):
    path = tmp_path / "kb.faiss"
    first = _unit(500, seed=6)
    build_atomic(path, np.arange(500), first, kind="flat")
    second = _unit(700, seed=7)
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:  # loads the file over and over while it is being replaced
        while not stop.is_set():
            seen.append(len(VectorIndex.load(path)))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(5):
            build_atomic(path, np.arange(700), second, kind="flat")
            build_atomic(path, np.arange(500), first, kind="flat")
    finally:
        stop.set()
        thread.join()
    assert seen and set(seen) <= {500, 700}
    assert len(VectorIndex.load(path)) == 500
    leftovers = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert leftovers == []


def test_failed_write_leaves_the_old_index(tmp_path, monkeypatch):
    import faiss

    path = tmp_path / "items.faiss"
    build_atomic(path, np.arange(10), _unit(10), kind="flat")

    def broken(index, target):  # e.g. the disk fills up half way
        with open(target, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", broken)
    with pytest.raises(OSError, match="disk full"):
        build_atomic(path, np.arange(20), _unit(20), kind="flat")
    monkeypatch.undo()
    assert len(VectorIndex.load(path)) == 10
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
