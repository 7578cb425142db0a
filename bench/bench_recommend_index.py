"""``ml.index`` approximate search (HNSW, IVF) vs exact Flat on synthetic 384-d item vectors.

For each size, every kind is tuned (HNSW ``ef_search``, IVF ``nprobe``) upwards until its
Recall@10 against Flat's exact top 10 reaches ``--target`` (0.95), then timed one query at a
time (the shape of a recommendation request). Printed per kind: the setting reached,
recall, queries/s and the ratio to Flat measured in the same run, build time and the
index's size in memory (as FAISS serialises it). Goal at 1M vectors: >= 20x Flat's queries/s.

The vectors are clustered points of a 32-d latent space (2,000 centres) lifted into 384-d
by a random linear map, plus a little noise, then normalised: like text embeddings, they
have a low intrinsic dimension. Uniformly random 384-d vectors have no neighbourhood
structure and are a worst case no real catalogue looks like. Queries are
fresh points from the same distribution, not copies of stored ones.

    TRELLIS_TORCH_THREADS=1 python bench/bench_recommend_index.py --sizes 100000
    TRELLIS_TORCH_THREADS=16 python bench/bench_recommend_index.py --sizes 1000000
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from ml import devices  # noqa: E402
from ml.index import VectorIndex  # noqa: E402

DIM = 384
LATENT = 32  # intrinsic dimension: text embeddings lie near a low-dimensional manifold
K = 10
HNSW_EF = (16, 32, 64, 128, 256, 512)
IVF_NPROBE = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def index_bytes(index: VectorIndex) -> int:
    """Size of the FAISS structure (vectors + graph or lists), as FAISS serialises it."""
    return int(faiss.serialize_index(index._index).nbytes)


def clustered(n: int, rng: np.random.Generator, space: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``n`` unit vectors: clustered points of a 32-d latent space mapped into 384-d."""
    centres, lift = space
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000  # bounds the temporaries to ~150 MB
    for start in range(0, n, step):
        m = min(step, n - start)
        latent = centres[rng.integers(0, len(centres), size=m)]
        latent = latent + rng.standard_normal(latent.shape).astype(np.float32) * 1.0
        chunk = latent @ lift + rng.standard_normal((m, DIM)).astype(np.float32) * 0.01
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start : start + m] = chunk
    return out


def latent_space(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """2,000 cluster centres in a 32-d latent space and a random 32 -> 384 lift."""
    centres = rng.standard_normal((2000, LATENT)).astype(np.float32)
    lift = (rng.standard_normal((LATENT, DIM)) / np.sqrt(LATENT)).astype(np.float32)
    return centres, lift


def recall(found: list[list[tuple[int, float]]], truth: np.ndarray) -> float:
    hits = sum(len({i for i, _ in row} & set(t.tolist())) for row, t in zip(found, truth, strict=True))
    return hits / (len(truth) * K)


def one_at_a_time(index: VectorIndex, queries: np.ndarray) -> tuple[list[list[tuple[int, float]]], float]:
    """Results and queries/s, one query per search call."""
    started = time.perf_counter()
    found = [index.search(q, K)[0] for q in queries]
    return found, len(queries) / (time.perf_counter() - started)


def build(kind: str, vectors: np.ndarray, ids: np.ndarray, ivf_train: int) -> tuple[VectorIndex, float, int]:
    gc.collect()
    started = time.perf_counter()
    if kind == "ivf" and len(vectors) > ivf_train:
        # IVF trains on its first add; k-means over a random sample is the usual practice.
        index = VectorIndex(DIM, "ivf")
        index.add(ids[:ivf_train], vectors[:ivf_train])
        index.add(ids[ivf_train:], vectors[ivf_train:])
    else:
        index = VectorIndex.build(ids, vectors, kind)
    seconds = time.perf_counter() - started
    return index, seconds, index_bytes(index)


def tune(index: VectorIndex, queries: np.ndarray, truth: np.ndarray, target: float) -> tuple[str, float, float]:
    """Raises the kind's knob until recall >= target; returns (setting, recall, qps)."""
    knobs = HNSW_EF if index.kind == "hnsw" else IVF_NPROBE
    tuning = queries[: min(200, len(queries))]
    chosen, got = knobs[-1], 0.0
    for knob in knobs:
        if index.kind == "hnsw":
            index.ef_search = knob
        else:
            index.nprobe = knob
        got = recall([index.search(q, K)[0] for q in tuning], truth[: len(tuning)])
        if got >= target:
            chosen = knob
            break
    if index.kind == "hnsw":
        index.ef_search = chosen
    else:
        index.nprobe = chosen
    found, qps = one_at_a_time(index, queries)
    name = "ef_search" if index.kind == "hnsw" else "nprobe"
    return f"{name}={chosen}", recall(found, truth), qps


def run_size(n: int, kinds: list[str], queries_n: int, target: float, ivf_train: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    space = latent_space(rng)
    vectors = clustered(n, rng, space)
    queries = clustered(queries_n, rng, space)
    ids = np.arange(n, dtype=np.int64)

    flat, flat_build, flat_mem = build("flat", vectors, ids, ivf_train)
    exact = flat.search(queries, K)  # batched: exact top 10 for recall
    truth = np.array([[i for i, _ in row] for row in exact], dtype=np.int64)
    _, flat_qps = one_at_a_time(flat, queries)
    rows = [{"n": n, "kind": "flat", "setting": "exact", "recall@10": 1.0, "qps": flat_qps, "speedup": 1.0,
             "build_s": flat_build, "memory_mb": flat_mem / 2**20}]
    del flat
    for kind in kinds:
        index, seconds, memory = build(kind, vectors, ids, ivf_train)
        setting, got, qps = tune(index, queries, truth, target)
        rows.append({"n": n, "kind": kind, "setting": setting, "recall@10": got, "qps": qps,
                     "speedup": qps / flat_qps, "build_s": seconds, "memory_mb": memory / 2**20})
        del index
        print_rows(rows[-1:], header=False)
    return rows


def print_rows(rows: list[dict], header: bool = True) -> None:
    if header:
        print(f"{'n':>9} {'kind':5} {'setting':14} {'recall@10':>9} {'q/s':>9} {'x flat':>7} {'build s':>8} {'MB':>7}")
    for r in rows:
        print(f"{r['n']:>9} {r['kind']:5} {r['setting']:14} {r['recall@10']:>9.3f} {r['qps']:>9.1f} "
              f"{r['speedup']:>7.1f} {r['build_s']:>8.1f} {r['memory_mb']:>7.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated vector counts")
    parser.add_argument("--kinds", default="hnsw,ivf")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--target", type=float, default=0.95, help="Recall@10 each kind is tuned to")
    parser.add_argument("--ivf-train", type=int, default=256_000, help="k-means sample for IVF cells")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    info = devices.current()
    print(f"threads={info.threads} dim={DIM} k={K} target recall@10={args.target}", flush=True)
    all_rows: list[dict] = []
    for n in [int(s) for s in args.sizes.split(",")]:
        print_rows([], header=True)
        rows = run_size(n, args.kinds.split(","), args.queries, args.target, args.ivf_train, args.seed)
        print_rows(rows[:1], header=False)
        all_rows.extend(rows)
    print("\nsummary")
    print_rows(all_rows)
    if args.json:
        args.json.write_text(json.dumps(all_rows, indent=2))


if __name__ == "__main__":
    main()
