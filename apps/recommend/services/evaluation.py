"""Offline evaluation runs: ``ml.recommend.evaluate`` on the app's own events, in a task.

Every recommender of the served blend is fitted afresh on the events before the cutoff only,
never on the fit that serves; "blend" is those members combined as the default blend serves
them (its weights and diversity). Hits are first purchases (or the chosen kinds) after the
cutoff. The stored result says plainly when popularity wins.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.recommend.models import EvaluationRun
from apps.recommend.services.background import enqueue
from apps.recommend.services.blends import MEMBERS, default_config
from apps.recommend.services.engine import blend_of, catalogue_load, interactions_load
from ml.recommend.served import member_build

log = logging.getLogger(__name__)


def evaluation_create(*, cutoff: datetime, k: int, kinds: list[str], user: Any) -> EvaluationRun:
    run = EvaluationRun.objects.create(
        params={"cutoff": cutoff.isoformat(), "k": k, "kinds": sorted(set(kinds))},
        created_by=user if getattr(user, "pk", None) else None)
    enqueue("evaluation_run_task", run.pk)
    return run


def _progress(run: EvaluationRun, value: float) -> None:
    EvaluationRun.objects.filter(pk=run.pk).update(progress=value)


def evaluation_run(run_id: int) -> EvaluationRun:
    """Fits on the events before the cutoff, scores after it; results stored on the run."""
    from ml.recommend.evaluate import evaluate, temporal_split

    run = EvaluationRun.objects.get(pk=run_id)
    if run.is_finished:
        return run
    EvaluationRun.objects.filter(pk=run.pk).update(status=EvaluationRun.Status.RUNNING)
    try:
        cutoff = datetime.fromisoformat(run.params["cutoff"])
        k = int(run.params["k"])
        split = temporal_split(interactions_load(), cutoff.timestamp(), test_kinds=tuple(run.params["kinds"]))
        if not split.test:
            raise ValueError("No test events after the cutoff (or none new to their shopper): "
                             "choose an earlier cutoff.")
        if not split.train:
            raise ValueError("No events before the cutoff to train on: choose a later cutoff.")
        catalogue = catalogue_load()
        fitted: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        for n, name in enumerate(MEMBERS):
            recommender = member_build(name)
            try:
                recommender.fit(split.train, catalogue)
            except (ValueError, RuntimeError) as exc:
                skipped[name] = str(exc)[:200]
                continue
            fitted[name] = recommender
            _progress(run, 0.5 * (n + 1) / len(MEMBERS))
        config = default_config()
        weights = {n: float(w) for n, w in config.weights.items() if n in fitted and w > 0}
        recommenders = dict(fitted)
        if weights:
            recommenders["blend"] = blend_of(fitted, weights, config.diversity)
        report = evaluate(recommenders, split, catalogue, ks=(k,))
        report["blend_weights"] = weights
        report["blend_diversity"] = config.diversity
        report["skipped"] = skipped
    except Exception as exc:
        log.exception("evaluation %s failed", run.pk)
        EvaluationRun.objects.filter(pk=run.pk).update(
            status=EvaluationRun.Status.FAILED, error=str(exc)[:500], finished_at=timezone.now())
        run.refresh_from_db()
        return run
    EvaluationRun.objects.filter(pk=run.pk).update(
        status=EvaluationRun.Status.SUCCEEDED, results=report, progress=1.0, finished_at=timezone.now())
    run.refresh_from_db()
    return run


def evaluation_chart(run: EvaluationRun) -> dict[str, Any]:
    """Rows for the table and the bar chart, and plain-language notes (who beat whom)."""
    results = (run.results or {}).get("results") or {}
    k = run.params.get("k", 10)
    metrics = [f"recall@{k}", f"ndcg@{k}", f"coverage@{k}"]
    rows = [{"name": name, "values": [r["all"].get(metrics[0], 0.0), r["all"].get(metrics[1], 0.0),
                                      r.get(metrics[2], 0.0)]} for name, r in results.items()]
    notes = []
    split = (run.results or {}).get("split") or {}
    if split:
        notes.append(f"{split.get('train_events', 0)} training events; {split.get('test_pairs', 0)} test pairs "
                     f"({split.get('test_events_already_seen', 0)} repeats of pairs seen before the cutoff "
                     "not counted); "
                     f"{split.get('warm_users', 0)} shoppers with history, {split.get('cold_users', 0)} without "
                     "(evaluated as cold start).")
    weights = (run.results or {}).get("blend_weights") or {}
    if "blend" in results and weights:
        diversity = (run.results or {}).get("blend_diversity") or 0.0
        notes.append("blend: the default blend as served, "
                     + " · ".join(f"{name} {weight:g}" for name, weight in weights.items())
                     + (f", diversity {diversity:g}" if diversity else "") + ".")
    if "blend" in results and "popularity" in results:
        blend, popular = results["blend"]["all"][metrics[0]], results["popularity"]["all"][metrics[0]]
        if blend <= popular:
            notes.append(f"The popularity baseline is as good as or better than the blend here "
                         f"({metrics[0]} {popular:.4f} vs {blend:.4f}): serve popularity, or retune the weights.")
        else:
            ratio = f"{blend / popular:.1f}x" if popular else "above"
            notes.append(f"The blend's {metrics[0]} is {ratio} popularity's ({blend:.4f} vs {popular:.4f}).")
    for name, why in ((run.results or {}).get("skipped") or {}).items():
        notes.append(f"{name} was not evaluated: {why}")
    return {"metrics": metrics, "rows": rows, "notes": notes}
