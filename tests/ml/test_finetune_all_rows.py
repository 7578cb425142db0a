"""``dev_fraction=0``: a fine-tune on every training row, for all its epochs, without calibration."""

from __future__ import annotations

from ml.finetune.classification import ClassifierTrainArgs, evaluate_artifact, train_classifier
from tests.ml.test_finetune_classification import make_rows


def test_a_run_without_a_dev_split_trains_on_every_row_for_all_epochs_and_is_not_calibrated(tmp_path):
    # given rows and a run that keeps no dev split (the held-out test split is still carved)
    rows = make_rows(40)
    events: list = []
    result = train_classifier(ClassifierTrainArgs(
        data=rows, role="intent", output_dir=tmp_path / "m", epochs=2, max_length=16, batch_size=16,
        learning_rate=1e-3, dev_fraction=0.0), progress=events.append)

    # then every row outside the test split was trained on, both epochs ran, and nothing claims a dev score
    split = result.manifest.extra["split"]
    assert split["dev"] == 0 and split["train"] + split["test"] == len(rows)
    assert result.manifest.extra["epochs_run"] == 2
    assert result.manifest.metrics["dev"] == {}
    # and, with no held-out rows to fit them on, no temperature or abstention threshold is stored
    assert "calibration" not in result.manifest.extra and "abstention" not in result.manifest.extra
    # and the model still learned: the test split is classified well, as served after a reload
    assert result.manifest.metrics["accuracy"] > result.manifest.metrics["majority_baseline_accuracy"] + 0.3
    assert evaluate_artifact(result.artifact_dir, result.test_rows)["accuracy"] == result.manifest.metrics["accuracy"]
