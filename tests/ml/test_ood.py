"""Out-of-scope scores, thresholds and abstention (ml.ood, ml.abstention), on hand-made data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.datasets import BANKING77_DIR
from ml.abstention import AbstentionFit, calibrate_artifact, fit_abstention, set_threshold, split_oos, write_reference
from ml.artifacts import Manifest, read_manifest
from ml.classify import FewShotClassifier, load_fewshot_classifier
from ml.finetune.data import validate
from ml.finetune.fewshot import train_fewshot
from ml.ood import (
    EMBEDDINGS_FILE,
    LABELS_FILE,
    METHODS,
    OOS_EMBEDDINGS_FILE,
    OOS_MARGIN,
    OOS_PENALTY,
    Abstention,
    knn_max_prob_oos_scores,
    knn_max_prob_scores,
    knn_scores,
    nearest_similarity,
)
from ml.ood_threshold import choose_threshold, curve_point, ood_report
from tests.ml.test_classify import hf_artifact  # noqa: F401 - fixture: a small saved hf-classifier

# Two intents live on two axes of a 4-d space; out-of-scope texts on a third axis.
AXES = {"refund": 0, "shipping": 1, "oos": 2}


class AxisEmbedder:
    """Text ``"<label> <n>"`` -> its label's axis plus a small deterministic wobble."""

    dim = 4

    def embed(self, texts, *, batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            label, n = text.split()
            out[i, AXES[label]] = 1.0
            out[i, 3] = (int(n) % 7) / 20  # 0 .. 0.3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _rows(label: str, numbers: range) -> list[tuple[str, str]]:
    return [(f"{label} {n}", label) for n in numbers]


class _Registry:
    def get(self, role: str):
        assert role == "embedder"
        return AxisEmbedder()


def test_choose_threshold_maximises_recall_within_the_accuracy_budget():
    # given four right in-scope rows and three out-of-scope rows, one scored like in-scope
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.65])
    correct = np.array([True] * 4 + [False] * 3)
    is_oos = np.array([False] * 4 + [True] * 3)
    # when no in-scope accuracy may be lost, only the two clear ones are caught
    threshold, basis = choose_threshold(scores, correct, is_oos, max_accuracy_drop=0.03)
    assert basis == "max_oos_recall"
    assert 0.2 < threshold <= 0.6
    assert curve_point(threshold, scores, correct, is_oos)["oos_recall"] == pytest.approx(2 / 3)
    # when a quarter may be lost, all three are
    threshold, _ = choose_threshold(scores, correct, is_oos, max_accuracy_drop=0.25)
    point = curve_point(threshold, scores, correct, is_oos)
    assert point["oos_recall"] == 1.0
    assert point["in_scope_accuracy"] == 0.75


def test_without_oos_rows_the_threshold_keeps_95_percent_of_in_scope_rows():
    scores = np.linspace(0.0, 1.0, 101)
    threshold, basis = choose_threshold(scores, np.ones(101, bool), np.zeros(101, bool))
    assert basis == "in_scope_quantile"
    assert (scores >= threshold).mean() == pytest.approx(0.95, abs=0.011)


def test_knn_max_prob_weighs_the_neighbour_similarity_and_the_top_probability():
    reference = np.array([[1.0, 0.0, 0.0]])
    features = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # on a training row / orthogonal to it
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    scores = knn_max_prob_scores(probs, features, reference, k=1, knn_weight=0.75)
    assert scores == pytest.approx([0.75 * 1.0 + 0.25 * 0.8, 0.75 * 0.0 + 0.25 * 0.6])
    rule = Abstention(method="knn_max_prob", threshold=0.5, reference=reference, k=1, knn_weight=0.75)
    assert rule.needs_features and rule.scores(probs, features) == pytest.approx(scores)
    with pytest.raises(ValueError, match="needs features"):
        rule.scores(probs, None)


def test_knn_max_prob_oos_pushes_out_a_text_as_close_to_an_example_as_to_its_predicted_class():
    # given two training rows of two classes and one out-of-scope example on a third axis
    reference = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    reference_labels = np.array([0, 1])
    oos_reference = np.array([[0.0, 1.0, 0.0]])
    # on class 0's row and predicted 0 / on class 0's row but predicted 1 / between class 0 and the example
    features = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [0.7, 0.3]])
    scores = knn_max_prob_oos_scores(probs, features, reference, oos_reference, knn_weight=0.75, oos_penalty=1.0,
                                     oos_margin=0.1, reference_labels=reference_labels)
    # then the kNN term reads the predicted class's nearest row, and the penalty is how much closer
    # (plus the margin) the example is than that row
    assert scores == pytest.approx([0.75 * 1.0 + 0.25 * 0.8,
                                    0.75 * 0.0 + 0.25 * 0.6 - 1.0 * (0.0 - 0.0 + 0.1),
                                    0.75 * 0.6 + 0.25 * 0.7 - 1.0 * (0.8 - 0.6 + 0.1)], abs=1e-6)
    rule = Abstention(method="knn_max_prob_oos", threshold=0.5, reference=reference, knn_weight=0.75,
                      oos_reference=oos_reference, oos_penalty=1.0, oos_margin=0.1, reference_labels=reference_labels)
    assert rule.scores(probs, features) == pytest.approx(scores)
    with pytest.raises(ValueError, match="out-of-scope examples"):
        Abstention(method="knn_max_prob_oos", threshold=0.5, reference=reference).scores(probs, features)


def test_a_rule_fitted_before_the_margin_keeps_its_plain_penalty():
    reference = np.array([[1.0, 0.0, 0.0]])
    oos_reference = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # on a training row / between a training row and an out-of-scope example / opposite the examples
    features = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, -1.0, 0.0]])
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    scores = knn_max_prob_oos_scores(probs, features, reference, oos_reference, k=1, knn_weight=0.75,
                                     oos_penalty=0.25, oos_margin=None)
    blend = knn_max_prob_scores(probs, features, reference, k=1, knn_weight=0.75)
    assert scores == pytest.approx([blend[0], blend[1] - 0.25 * 0.8, blend[2]])  # negative similarity: no bonus
    rule = Abstention(method="knn_max_prob_oos", threshold=0.5, reference=reference, k=1, knn_weight=0.75,
                      oos_reference=oos_reference, oos_penalty=0.25, oos_margin=None)
    assert rule.scores(probs, features) == pytest.approx(scores)


def test_an_example_is_not_its_own_nearest_out_of_scope_example():
    examples = np.array([[1.0, 0.0], [0.6, 0.8]])
    np.testing.assert_allclose(nearest_similarity(examples, examples), [1.0, 1.0])
    np.testing.assert_allclose(nearest_similarity(examples, examples, exclude_self=True), [0.6, 0.6])
    np.testing.assert_allclose(nearest_similarity(examples[:1], examples[:1], exclude_self=True), [-1.0])


def test_fit_abstention_scores_oos_examples_against_the_others_and_the_rule_survives_a_reload(tmp_path):
    # given a head on two intents and out-of-scope examples on a third axis
    train = _rows("refund", range(20)) + _rows("shipping", range(20))
    clf = FewShotClassifier.fit(AxisEmbedder(), [t for t, _ in train], [y for _, y in train])
    dev = _rows("refund", range(20, 30)) + _rows("shipping", range(20, 30))
    oos = _rows("oos", range(10))
    # when the rule is fitted, every scorer is measured, the new one included
    fit = fit_abstention(clf, dev, oos, [t for t, _ in train], train_labels=[y for _, y in train])
    assert set(fit.extra["abstention"]["auroc"]) == set(METHODS)
    probs = clf.predict_proba([t for t, _ in dev + oos])
    _, features = clf.logits_and_features([t for t, _ in dev + oos], with_features=True)
    reference = clf.logits_and_features([t for t, _ in train], with_features=True)[1]
    labels = np.array([clf.labels.index(y) for _, y in train])
    examples = features[len(dev):]
    expected = np.concatenate([
        knn_max_prob_oos_scores(probs[:len(dev)], features[:len(dev)], reference, examples, reference_labels=labels),
        knn_max_prob_oos_scores(probs[len(dev):], features[len(dev):], reference, examples, reference_labels=labels,
                                exclude_self=True)])
    np.testing.assert_allclose(fit.scores["knn_max_prob_oos"], expected, atol=2e-3)  # float16 references
    # and a rule of that method written beside an artifact reads back with both references and the labels
    entry = {"method": "knn_max_prob_oos", "threshold": 0.6, "oos_label": "oos", "k": 1,
             "embeddings_file": EMBEDDINGS_FILE, "oos_embeddings_file": OOS_EMBEDDINGS_FILE,
             "knn_weight": 0.75, "oos_penalty": OOS_PENALTY, "oos_margin": OOS_MARGIN, "labels_file": LABELS_FILE}
    write_reference(tmp_path, AbstentionFit(extra={"abstention": entry}, reference=reference.astype(np.float16),
                                            oos_reference=examples.astype(np.float16), reference_labels=labels))
    rule = Abstention.from_manifest(tmp_path, {"abstention": entry})
    assert rule.method == "knn_max_prob_oos" and rule.oos_reference.shape == examples.shape
    assert rule.reference_labels.tolist() == labels.tolist()
    np.testing.assert_allclose(rule.scores(probs, features), expected, atol=2e-3)
    for name in (LABELS_FILE, OOS_EMBEDDINGS_FILE):
        (tmp_path / name).unlink()
        with pytest.raises(ValueError, match="missing"):
            Abstention.from_manifest(tmp_path, {"abstention": entry})


def test_knn_score_is_high_near_training_rows_and_low_far_from_them():
    reference = np.eye(3, dtype=np.float32)
    scores = knn_scores(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]), reference, k=1)
    np.testing.assert_allclose(scores, [1.0, 0.0, 0.0])


@pytest.mark.parametrize("use_train_texts", [False, True])
def test_fit_abstention_abstains_exactly_on_the_out_of_scope_texts(use_train_texts):
    # given a head trained on two intents
    train = _rows("refund", range(20)) + _rows("shipping", range(20))
    clf = FewShotClassifier.fit(AxisEmbedder(), [t for t, _ in train], [y for _, y in train])
    dev = _rows("refund", range(20, 30)) + _rows("shipping", range(20, 30))
    oos = _rows("oos", range(10))
    # when the rule is fitted on held-out rows
    fit = fit_abstention(clf, dev, oos, [t for t, _ in train] if use_train_texts else ())
    # then the scorer separates them perfectly and the chosen threshold abstains on all of them only
    assert fit.extra["abstention"]["auroc"][fit.method] == 1.0
    assert fit.method == "max_prob" or use_train_texts
    assert 0.0 <= fit.threshold <= 1.0
    assert fit.extra["abstention"]["dev"]["oos_recall"] == 1.0
    assert fit.extra["abstention"]["dev"]["in_scope_accuracy"] == 1.0
    from ml.abstention import apply_fit

    apply_fit(clf, fit)
    test = _rows("refund", range(40, 45)) + _rows("oos", range(40, 45))
    predictions = clf.predict([t for t, _ in test])
    assert [p.abstained for p in predictions] == [False] * 5 + [True] * 5
    assert all(p.ood_score is not None for p in predictions)
    report = ood_report([y for _, y in test], predictions)
    assert report["oos_recall"] == 1.0 and report["oos_precision"] == 1.0
    assert report["in_scope_accuracy"] == 1.0
    assert len(report["curve"]) == 51


def test_fewshot_training_keeps_oos_rows_out_of_the_classes_and_persists_the_rule(tmp_path):
    # given training data with an out-of-scope label
    data = _rows("refund", range(40)) + _rows("shipping", range(40)) + _rows("oos", range(20))
    # when it is trained
    result = train_fewshot(data, role="intent", output_dir=tmp_path / "v1", embedder=AxisEmbedder())
    manifest = read_manifest(tmp_path / "v1")
    # then oos is not a class, the manifest holds calibration and abstention, the report OOS figures
    assert manifest.labels == ["refund", "shipping"]
    assert set(manifest.extra["calibration"]) >= {"temperature", "ece_before", "ece_after"}
    rule = manifest.extra["abstention"]
    assert rule["oos_label"] == "oos" and rule["method"] in METHODS
    assert set(rule["auroc"]) == set(METHODS)
    assert (tmp_path / "v1" / EMBEDDINGS_FILE).is_file() == (rule["method"] != "max_prob")
    assert (tmp_path / "v1" / OOS_EMBEDDINGS_FILE).is_file() == (rule["method"] == "knn_max_prob_oos")
    assert manifest.metrics["abstention"]["oos_recall"] == 1.0
    assert "oos" in [label for _, label in result.test_rows]
    # and a reload applies it
    loaded = load_fewshot_classifier(tmp_path / "v1", manifest, _Registry())
    assert [p.abstained for p in loaded.predict(["oos 99", "refund 99"])] == [True, False]


def test_a_changed_threshold_takes_effect_after_reload(tmp_path):
    # given a saved few-shot version calibrated on held-out rows
    train = _rows("refund", range(10)) + _rows("shipping", range(10))
    clf = FewShotClassifier.fit(AxisEmbedder(), [t for t, _ in train], [y for _, y in train])
    clf.save(tmp_path, Manifest(role="intent", kind="fewshot-classifier", version="v1"))
    held_out = _rows("refund", range(10, 15)) + _rows("shipping", range(10, 15)) + _rows("oos", range(5))
    calibrate_artifact(tmp_path, held_out, registry=_MemoryRegistry(clf))
    texts = ["refund 3", "oos 3"]

    def reload():
        return load_fewshot_classifier(tmp_path, read_manifest(tmp_path), _Registry())

    assert [p.abstained for p in reload().predict(texts)] == [False, True]
    # when an admin sets the threshold to 0 (never abstain), then to 1 (always abstain)
    set_threshold(tmp_path, 0.0)
    assert [p.abstained for p in reload().predict(texts)] == [False, False]
    set_threshold(tmp_path, 1)
    predictions = reload().predict(texts)
    assert all(p.abstained == (p.ood_score > 0) for p in predictions)  # only a score of exactly 1 passes
    assert predictions[1].abstained
    assert read_manifest(tmp_path).extra["abstention"]["threshold"] == 1.0


@pytest.mark.parametrize("bad", [-0.1, 1.5, "high", None, True])
def test_a_threshold_outside_0_1_is_refused_and_nothing_changes(tmp_path, bad):
    clf = FewShotClassifier.fit(AxisEmbedder(), ["refund 1", "shipping 1"], ["refund", "shipping"])
    clf.save(tmp_path, Manifest(role="intent", kind="fewshot-classifier", version="v1"))
    before = (tmp_path / "manifest.json").read_text()
    with pytest.raises(ValueError, match="threshold"):
        set_threshold(tmp_path, bad)
    assert (tmp_path / "manifest.json").read_text() == before
    assert "abstention" not in json.loads(before)["extra"]


def test_validation_sets_oos_rows_aside_and_refuses_an_oos_only_dataset():
    report = validate(_rows("refund", range(3)) + _rows("shipping", range(3)) + _rows("oos", range(4)))
    assert report.ok
    assert report.label_counts == {"refund": 3, "shipping": 3}
    assert len(report.oos_rows) == 4 and report.to_dict()["n_oos_rows"] == 4
    only = validate(_rows("oos", range(5)))
    assert not only.ok
    assert any("out-of-scope" in e for e in only.errors)
    # a different out-of-scope label is configurable
    custom = validate(_rows("refund", range(3)) + _rows("shipping", range(3)) + _rows("oos", range(2)),
                      oos_label="none")
    assert "oos" in custom.label_counts


def test_split_oos():
    assert split_oos([("a", "x"), ("b", "oos")]) == ([("a", "x")], [("b", "oos")])


class _MemoryRegistry:
    """``load_artifact`` returning an already built classifier (what the registry caches)."""

    def __init__(self, classifier) -> None:
        self.classifier = classifier

    def load_artifact(self, path: Path):
        return self.classifier


OUT_OF_SCOPE = ["What is the weather in Paris tomorrow?", "Tell me a joke about cats",
                "Who won the football game last night?", "How do I bake sourdough bread?",
                "Play some jazz music", "What is the capital of Australia?"]


def test_fine_tuned_classifier_is_calibrated_and_abstains_after_reload(hf_artifact, tmp_path):  # noqa: F811
    import shutil

    from ml.calibration import softmax
    from ml.registry import Registry
    from tests.ml.test_classify import FEWSHOT, HELD_OUT, TRAIN

    # given a saved hf-classifier and held-out rows with out-of-scope examples
    artifact = tmp_path / "hf"
    shutil.copytree(hf_artifact, artifact)
    held_out = [(t, label) for label, texts in FEWSHOT.items() for t in texts[HELD_OUT]]
    held_out += [(t, "oos") for t in OUT_OF_SCOPE]
    train_texts = [t for texts in FEWSHOT.values() for t in texts[TRAIN]]
    # when it is calibrated (the trainer's post-save hook)
    manifest = calibrate_artifact(artifact, held_out, train_texts=train_texts, registry=Registry())
    # then a fresh load applies the stored temperature and rule
    clf = Registry().load_artifact(artifact)
    temperature = manifest.extra["calibration"]["temperature"]
    assert clf.calibration_temperature == pytest.approx(temperature)
    assert clf.abstention.method == manifest.extra["abstention"]["method"]
    logits, features = clf.logits_and_features(OUT_OF_SCOPE[:2], with_features=True)
    np.testing.assert_allclose(clf.predict_proba(OUT_OF_SCOPE[:2]), softmax(logits, temperature), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-4)
    predictions = clf.predict([t for t, _ in held_out])
    report = ood_report([y for _, y in held_out], predictions)
    assert report["auroc"] is not None and report["auroc"] > 0.5
    # and an edited threshold of 0 switches abstention off after a reload
    set_threshold(artifact, 0.0)
    assert not any(p.abstained for p in Registry().load_artifact(artifact).predict(OUT_OF_SCOPE))


@pytest.mark.skipif(not (BANKING77_DIR / "train.csv").is_file(), reason="BANKING77 not present")
def test_the_leave_intents_out_protocol_runs(capsys):
    from bench import eval_ood

    # a smoke run: 300 in-scope training rows, 60 rows of each evaluation set, two splits
    assert eval_ood.main(["--max-train-rows", "300", "--max-eval-rows", "60", "--seeds", "42,7"]) == 0
    out = capsys.readouterr().out
    assert "10 intents held out (5 give oos examples)" in out
    assert "seed 42" in out and "seed 7" in out and "mean of 2 splits" in out
    assert "fewshot max_prob: oos recall" in out and "fewshot knn: oos recall" in out
    assert "fewshot knn_max_prob: oos recall" in out and "fewshot knn_max_prob_oos: oos recall" in out
