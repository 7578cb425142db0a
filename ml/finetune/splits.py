"""Train/dev/test splits, subsamples and class weights of labelled rows.

Stratified where every class can take part, so a small class still appears in each split;
pure functions of their seed, so a resumed run splits exactly as the first attempt did.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

Row = tuple[str, str]


@dataclass
class Split:
    """Train / dev / test rows, and the out-of-scope examples set aside (never a class)."""

    train: list[Row]
    dev: list[Row]
    test: list[Row]
    oos: list[Row] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


def _hold_out(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Holds ``fraction`` of ``rows`` out, stratified when every class can take part.

    Classes with fewer than 2 rows stay whole on the kept side; when the held-out share is
    smaller than the number of classes sklearn cannot stratify, so a plain shuffle split
    is used and every class that lost all its kept rows gets one back.
    """
    from sklearn.model_selection import train_test_split

    n_held = round(len(rows) * fraction)
    if fraction <= 0 or n_held == 0:
        return list(rows), []
    counts = Counter(label for _, label in rows)
    small = [r for r in rows if counts[r[1]] < 2]
    rest = [r for r in rows if counts[r[1]] >= 2]
    n_classes = len({label for _, label in rest})
    if len(rest) < 2:
        return list(rows), []
    n_held = min(max(1, round(len(rest) * fraction)), len(rest) - 1)
    stratify: list[str] | None = [label for _, label in rest]
    if n_held < n_classes or len(rest) - n_held < n_classes:
        stratify = None
    keep, held = train_test_split(rest, test_size=n_held, random_state=seed, stratify=stratify)
    keep, held = list(keep) + small, list(held)
    kept_labels = {label for _, label in keep}
    for row in list(held):
        if row[1] not in kept_labels:
            held.remove(row)
            keep.append(row)
            kept_labels.add(row[1])
    return keep, held


def stratified_split(
    rows: Sequence[Row], dev_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 42
) -> Split:
    """Splits rows into train/dev/test with class proportions kept (sklearn).

    Every class keeps at least one training row; classes too small to share are kept in
    train whole.

    Args:
        rows: clean rows.
        dev_fraction: share of all rows for the dev split (early stopping).
        test_fraction: share of all rows for the held-out test split.
        seed: random state of the splits.

    Returns:
        The Split.
    """
    rows = list(rows)
    rest, test = _hold_out(rows, test_fraction, seed)
    dev_share = dev_fraction / (1 - test_fraction) if test_fraction < 1 else 0.0
    train, dev = _hold_out(rest, dev_share, seed + 1)
    return Split(train, dev, test)


def subsample(rows: Sequence[Row], n: int, seed: int = 42) -> list[Row]:
    """At most ``n`` rows, stratified, each class keeping at least one row where n allows."""
    rows = list(rows)
    if n >= len(rows):
        return rows
    by_label: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_label[row[1]].append(row)
    rng = random.Random(seed)  # noqa: S311 - seeded for reproducible runs, not a secret
    for group in by_label.values():
        rng.shuffle(group)
    # one per class first, then a uniform draw from the rest (proportional on average)
    picked = [group[0] for group in by_label.values()][:n]
    remaining = [r for group in by_label.values() for r in group[1:]]
    rng.shuffle(remaining)
    picked += remaining[: n - len(picked)]
    rng.shuffle(picked)
    return picked


def class_weights(labels: Sequence[str], label_order: Sequence[str]) -> list[float]:
    """Inverse-frequency class weights, normalised so that the mean weight per row is 1.

    ``n_rows / (n_classes * count)`` (sklearn's "balanced"); a class absent from
    ``labels`` gets weight 1.

    Args:
        labels: the training labels.
        label_order: head order of the classes.

    Returns:
        One weight per class in ``label_order``.
    """
    counts = Counter(labels)
    present = [label for label in label_order if counts[label]]
    total = sum(counts[label] for label in present)
    return [total / (len(present) * counts[label]) if counts[label] else 1.0
            for label in label_order]
