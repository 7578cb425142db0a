"""Temperature scaling and calibration error (ml.calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.datasets import BANKING77_DIR, read_labelled_csv
from ml.calibration import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    reliability,
    softmax,
)
from ml.classify import FewShotClassifier


def _sampled(temperature: float, n: int = 4000, classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose labels were drawn from ``softmax(logits / temperature)``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(n, classes))
    probs = softmax(logits, temperature).astype(np.float64)
    targets = np.array([rng.choice(classes, p=p / p.sum()) for p in probs])
    return logits, targets


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_with():
    # given labels drawn at T = 2.5 (the raw logits are over-confident)
    logits, targets = _sampled(2.5)
    # when / then
    assert fit_temperature(logits, targets) == pytest.approx(2.5, rel=0.15)


def test_temperature_is_clamped_and_empty_input_is_neutral():
    # a confident logit that is right half of the time: the best temperature is infinite
    logits = np.array([[5.0, -5.0]] * 20)
    assert fit_temperature(logits, [0, 1] * 10) == pytest.approx(MAX_TEMPERATURE)
    # always right: sharpen (the NLL keeps falling as T shrinks)
    assert MIN_TEMPERATURE <= fit_temperature(logits, [0] * 20) < 1.0
    assert fit_temperature(np.empty((0, 2)), []) == 1.0


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not():
    # given 10 rows at confidence 0.8 of which 8 are right
    probs = np.tile([0.8, 0.2], (10, 1))
    right = [0] * 8 + [1] * 2
    assert expected_calibration_error(probs, right) == pytest.approx(0.0, abs=1e-9)
    # and the same confidence with every row wrong
    assert expected_calibration_error(probs, [1] * 10) == pytest.approx(0.8)
    bins = reliability(probs, right)
    assert sum(b.count for b in bins) == 10
    assert len(bins) == 15


def test_calibrate_lowers_ece_without_changing_predictions():
    logits, targets = _sampled(3.0, seed=1)
    result = calibrate(logits, targets)
    assert result.ece_after < result.ece_before / 2
    assert (softmax(logits, result.temperature).argmax(1) == softmax(logits).argmax(1)).all()


@pytest.mark.skipif(not (BANKING77_DIR / "train.csv").is_file(), reason="BANKING77 not present")
def test_calibration_lowers_ece_on_a_real_held_out_split(embedder):
    # given a few-shot head on 8 BANKING77 intents (12 train, 8 dev, 8 test rows each)
    rows = read_labelled_csv(BANKING77_DIR / "train.csv", "category")
    intents = sorted({label for _, label in rows})[:8]
    per = {i: [t for t, label in rows if label == i][:28] for i in intents}
    part = {name: [(t, i) for i in intents for t in per[i][a:b]]
            for name, (a, b) in {"train": (0, 12), "dev": (12, 20), "test": (20, 28)}.items()}
    clf = FewShotClassifier.fit(embedder, [t for t, _ in part["train"]], [y for _, y in part["train"]])
    index = {label: k for k, label in enumerate(clf.labels)}

    def logits_targets(split: str) -> tuple[np.ndarray, list[int]]:
        logits, _ = clf.logits_and_features([t for t, _ in part[split]])
        return logits, [index[y] for _, y in part[split]]

    # when the temperature is fitted on dev
    dev_logits, dev_targets = logits_targets("dev")
    fitted = calibrate(dev_logits, dev_targets)
    # then the ECE falls on dev and on unseen test rows
    test_logits, test_targets = logits_targets("test")
    assert fitted.ece_after < fitted.ece_before
    before = expected_calibration_error(softmax(test_logits), test_targets)
    after = expected_calibration_error(softmax(test_logits, fitted.temperature), test_targets)
    assert after < before
