"""Offline quality on UCI Online Retail: each recommender and the served blend vs popularity.

Protocol (ml/recommend/online_retail.py, ml/recommend/evaluate.py): purchases only,
cancellations, non-positive quantities, lines without a customer and non-product codes
dropped; train before T = 2011-10-01, test after; a (customer, item) pair bought before T
is not a hit and is filtered from the lists; customers new after T are evaluated as cold
start (reported apart). Item embeddings: all-MiniLM-L6-v2 over the product descriptions.

What is measured is what the app serves: the members of ``ml.recommend.served`` (content,
co-occurrence, ALS, popularity, trending), set up as the app fits them, blended with
``SERVED_WEIGHTS``. Those weights were chosen on a validation split carved from the training
period (fit before ``--val-cutoff`` = 2011-09-01, score on [2011-09-01, T)), never on the test
period; this script reruns that grid search (``--skip-validation`` to save its ~6 minutes) and
says whether the served weights are still its pick. The members are then fitted on all of
train and scored once on test. Goal: blend Recall@10 >= 2x popularity's.

    TRELLIS_TORCH_THREADS=1 python bench/eval_recommend.py [--json var/eval_recommend.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from bench.datasets import DATASETS  # noqa: E402

RETAIL_DIR = DATASETS / "uci_online_retail"
# The validation grid. Only ratios matter, so ALS is held at 1 (or 0.5) and the others move around it.
GRID = {"content": (0.0, 0.25, 0.5), "cooccurrence": (0.0, 0.5, 1.0), "als": (0.5, 1.0),
        "popularity": (0.0, 0.1, 0.25), "trending": (0.0, 0.25, 0.5, 1.0)}


def print_table(result: dict, k: int) -> None:
    rows = result["results"]
    base = rows["popularity"]["all"][f"recall@{k}"] or float("nan")
    print(f"{'recommender':14} {f'recall@{k}':>9} {f'ndcg@{k}':>8} {'x pop':>6} {'warm R@K':>9} "
          f"{'cold R@K':>9} {'coverage':>9} {'seconds':>8}")
    for name, r in rows.items():
        print(f"{name:14} {r['all'][f'recall@{k}']:>9.4f} {r['all'][f'ndcg@{k}']:>8.4f} "
              f"{r['all'][f'recall@{k}'] / base:>6.2f} {r['warm'][f'recall@{k}']:>9.4f} "
              f"{r['cold'][f'recall@{k}']:>9.4f} {r[f'coverage@{k}']:>9.3f} {r['seconds']:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=RETAIL_DIR)
    parser.add_argument("--val-cutoff", default="2011-09-01")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write the full result here")
    parser.add_argument("--skip-validation", action="store_true",
                        help="skip the validation grid search (only score the served blend on test)")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"Online Retail not found at {args.data} (set TRELLIS_DATASETS)")

    from ml.defaults import embedder_weights
    from ml.embeddings import Embedder
    from ml.recommend import Blend, Catalogue
    from ml.recommend.evaluate import evaluate, temporal_split, tune_blend
    from ml.recommend.online_retail import CUTOFF, read_online_retail
    from ml.recommend.served import SERVED_WEIGHTS, served_members

    started = time.perf_counter()
    data = read_online_retail(args.data)
    print(f"read {data.report} in {time.perf_counter() - started:.1f}s", flush=True)
    items = sorted({e.item for e in data.interactions})
    texts = [data.titles.get(i, i).lower() for i in items]
    started = time.perf_counter()
    embeddings = Embedder(embedder_weights()).embed(texts)
    print(f"embedded {len(items)} descriptions in {time.perf_counter() - started:.1f}s", flush=True)
    catalogue = Catalogue(items=items, available=set(items), embeddings=embeddings)
    metric = f"recall@{args.k}"
    served = {n: w for n, w in SERVED_WEIGHTS.items() if w > 0}
    print(f"served blend (ml/recommend/served.py): {served}")

    # 1. The validation grid that chose the served weights: fit before val_cutoff, score [val_cutoff, T).
    picked = None
    validation_report: dict = {}
    if not args.skip_validation:
        val_cutoff = datetime.fromisoformat(args.val_cutoff).replace(tzinfo=UTC).timestamp()
        before_test = [e for e in data.interactions if e.ts < CUTOFF]
        validation = temporal_split(before_test, val_cutoff, end=CUTOFF)
        blend = Blend({m.name: 1.0 for m in served_members()}, served_members())
        started = time.perf_counter()
        blend.fit(validation.train, catalogue)
        picked, tried = tune_blend(blend, validation, GRID, k=args.k, metric=metric)
        print(f"validation split {validation.report}; tuned {len(tried)} weightings in "
              f"{time.perf_counter() - started:.1f}s")
        for row in tried[:5]:
            print(f"  {row['weights']}  {metric}={row[metric]:.4f}")
        mine = next((row for row in tried if row["weights"] == {n: SERVED_WEIGHTS.get(n, 0.0) for n in GRID}), None)
        best = tried[0][metric]
        if mine is None:
            print("the served weights are not on the grid")
        elif mine[metric] >= best:
            print(f"the served weights are the validation pick ({metric} {best:.4f})")
            picked = None
        else:
            print(f"WARNING: the validation pick {picked} ({metric} {best:.4f}) beats the served weights "
                  f"({mine[metric]:.4f}): update SERVED_WEIGHTS in ml/recommend/served.py")
        validation_report = {"cutoff": val_cutoff, "split": validation.report, "top": tried[:10],
                             "served": mine}

    # 2. Fit the served members on all of train and score once on test.
    split = temporal_split(data.interactions, CUTOFF)
    fitted = served_members()
    started = time.perf_counter()
    for member in fitted:
        member.fit(split.train, catalogue)
    print(f"test split {split.report}; fitted in {time.perf_counter() - started:.1f}s", flush=True)
    candidates = {m.name: m for m in fitted}
    candidates["blend"] = Blend.of_fitted(served, [m for m in fitted if m.name in served])
    if picked:
        candidates["validation pick"] = Blend.of_fitted({n: w for n, w in picked.items() if w > 0},
                                                        [m for m in fitted if picked.get(m.name, 0) > 0])
    result = evaluate(candidates, split, catalogue, ks=(args.k,))
    result["served_weights"] = served
    result["validation"] = validation_report
    print()
    print_table(result, args.k)
    ratio = result["results"]["blend"]["all"][metric] / max(result["results"]["popularity"]["all"][metric], 1e-12)
    print(f"\nserved blend / popularity Recall@{args.k}: {ratio:.2f}x (goal >= 2x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
