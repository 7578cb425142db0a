"""Honest offline evaluation: temporal split, Recall@K, NDCG@K, catalogue coverage.

Protocol: recommenders are fitted on the events before the cutoff T only. A test case is a
(user, item) pair of the chosen kinds (purchases) at or after T whose pair never occurred
before T: re-buying what one already bought is not a hit (it is excluded from the lists
too: the user's training history is passed as ``history`` and filtered out). Users with
no event before T ("cold") are kept and evaluated as cold start (no history: the
recommenders fall back to what they can give, typically popularity); the report gives
all users, warm users and cold users separately so neither hides the other.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml.metrics import ranking_report
from ml.recommend.blend import Blend
from ml.recommend.types import Catalogue, Interaction, Recommender, Scored


@dataclass
class TemporalSplit:
    """Train events, held-out new pairs and each user's training history.

    Attributes:
        cutoff: T, Unix seconds.
        train: events with ``ts < cutoff``.
        test: user -> items they first interacted with at or after T (kinds ``test_kinds``).
        history: user -> their training events, oldest first.
        report: counts (test pairs, pairs dropped as already seen, warm and cold users).
    """

    cutoff: float
    train: list[Interaction]
    test: dict[str, set[str]]
    history: dict[str, list[Interaction]]
    report: dict[str, int] = field(default_factory=dict)


def temporal_split(interactions: Iterable[Interaction], cutoff: float, *, end: float | None = None,
                   test_kinds: Sequence[str] = ("purchase",)) -> TemporalSplit:
    """Splits at ``cutoff``; test pairs seen (any kind) before it are dropped.

    Args:
        interactions: all events.
        cutoff: T, Unix seconds.
        end: ignore events at or after this time (a validation window inside train).
        test_kinds: event kinds that make test pairs.

    Returns:
        The split.
    """
    events = sorted(interactions, key=lambda e: e.ts)
    train = [e for e in events if e.ts < cutoff]
    seen = {(e.user, e.item) for e in train}
    history: dict[str, list[Interaction]] = {}
    for event in train:
        history.setdefault(event.user, []).append(event)
    test: dict[str, set[str]] = {}
    pairs = dropped = 0
    for event in events:
        if event.ts < cutoff or (end is not None and event.ts >= end) or event.kind not in test_kinds:
            continue
        if (event.user, event.item) in seen:
            dropped += 1
            continue
        if event.item not in test.setdefault(event.user, set()):
            pairs += 1
            test[event.user].add(event.item)
    test = {u: items for u, items in test.items() if items}
    warm = sum(1 for u in test if u in history)
    return TemporalSplit(cutoff, train, test, history, {
        "train_events": len(train), "test_pairs": pairs, "test_events_already_seen": dropped,
        "warm_users": warm, "cold_users": len(test) - warm})


def user_lists(recommender: Recommender, split: TemporalSplit, users: Sequence[str], k: int) -> list[list[Scored]]:
    """Top-``k`` lists for ``users``, each given their training history."""
    return [recommender.recommend(u, k, history=split.history.get(u, ())) for u in users]


def score_lists(lists: Sequence[Sequence[str]], split: TemporalSplit, users: Sequence[str], ks: Sequence[int],
                catalogue_size: int) -> dict[str, Any]:
    """Metrics for all, warm and cold users, plus catalogue coverage at each K."""
    out: dict[str, Any] = {}
    for group, keep in (("all", lambda u: True), ("warm", lambda u: u in split.history),
                        ("cold", lambda u: u not in split.history)):
        rows = [i for i, u in enumerate(users) if keep(u)]
        report = ranking_report([lists[i] for i in rows], [split.test[users[i]] for i in rows], ks)
        out[group] = {"users": len(rows), **report}
    for k in ks:
        shown = set(itertools.chain.from_iterable(lst[:k] for lst in lists))
        out[f"coverage@{k}"] = len(shown) / catalogue_size if catalogue_size else 0.0
    return out


def evaluate(recommenders: Mapping[str, Recommender], split: TemporalSplit, catalogue: Catalogue, *,
             ks: Sequence[int] = (10,), cold_users: bool = True) -> dict[str, Any]:
    """Evaluates fitted recommenders (fitted on ``split.train`` only) on the split.

    Args:
        recommenders: name -> a recommender already fitted on ``split.train``.
        split: from ``temporal_split``.
        catalogue: the items that could be recommended (coverage's denominator).
        ks: cut-offs.
        cold_users: evaluate users without training events as cold start (True) or leave
            them out (False).

    Returns:
        JSON-ready ``{"protocol", "split", "results": {name: {"all", "warm", "cold",
        "coverage@K", "seconds"}}}``; each group holds ``users``, ``recall@K``, ``ndcg@K``, ``mrr``.
    """
    users = sorted(u for u in split.test if cold_users or u in split.history)
    k = max(ks)
    results: dict[str, Any] = {}
    for name, recommender in recommenders.items():
        started = time.perf_counter()
        lists = [[s.item for s in lst] for lst in user_lists(recommender, split, users, k)]
        results[name] = {**score_lists(lists, split, users, ks, len(catalogue)),
                         "seconds": round(time.perf_counter() - started, 3)}
    return {
        "protocol": {"cutoff": split.cutoff, "ks": list(ks), "cold_users": "cold start" if cold_users else "excluded",
                     "already_seen_pairs": "not hits; the user's training items are filtered from the lists"},
        "split": split.report,
        "results": results,
    }


def tune_blend(blend: Blend, split: TemporalSplit, grid: Mapping[str, Sequence[float]], *, k: int = 10,
               metric: str = "recall@10") -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Picks blend weights by grid search on a (validation) split.

    Each member's candidate lists are computed once per user; every weight combination is
    then scored by re-blending them, so the grid costs little beyond one pass per member.
    ``blend`` must be fitted on ``split.train``; use a split carved from the training
    period, never the test period.

    Args:
        blend: the fitted blend whose members are weighed.
        split: the validation split.
        grid: member name -> candidate weights.
        k: list length.
        metric: what to maximise (over all users of the split).

    Returns:
        (best weights, every tried combination with its metrics, best first).
    """
    users = sorted(split.test)
    names = list(grid)
    full = Blend.of_fitted({n: 1.0 for n in names}, [m for m in blend.members if m.name in grid],
                           candidates=blend.candidates, diversity=blend.diversity, filters=blend.filters)
    member_lists = [full.member_lists(u, k, history=split.history.get(u, ())) for u in users]
    catalogue = blend._require_catalogue()
    tried = []
    for values in itertools.product(*(grid[n] for n in names)):
        weights = dict(zip(names, values, strict=True))
        if not any(weights.values()):
            continue
        lists = [[s.item for s in full.combine(ml, k, weights)] for ml in member_lists]
        metrics = score_lists(lists, split, users, (k,), len(catalogue))
        tried.append({"weights": weights, **metrics["all"], f"coverage@{k}": metrics[f"coverage@{k}"]})
    tried.sort(key=lambda row: -row[metric])
    return dict(tried[0]["weights"]), tried
