"""WiSE-FT (ml.finetune.weight_averaging): the encoder averaged with its base, the head refitted."""

from __future__ import annotations

import pytest
import torch

from ml.finetune.classification import ClassifierTrainArgs, _base_model, evaluate_artifact, train_classifier
from ml.finetune.weight_averaging import average_with_base
from tests.ml.test_finetune_classification import make_rows

LABELS = ["account", "refund", "shipping"]


def _args(rows, out, **kw) -> ClassifierTrainArgs:
    base = dict(data=rows, role="intent", output_dir=out, epochs=1, max_steps=4, max_length=16, batch_size=16,
                learning_rate=1e-3)
    base.update(kw)
    return ClassifierTrainArgs(**base)


def _encoder_weight(model_dir_or_model) -> torch.Tensor:
    model = model_dir_or_model
    if not isinstance(model, torch.nn.Module):
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(str(model))
    return model.bert.encoder.layer[0].attention.self.query.weight.detach().clone()


def test_averaging_moves_every_encoder_weight_towards_the_base_and_leaves_the_head(tmp_path):
    # given a model whose encoder moved away from its base by a known delta
    args = _args(make_rows(10), tmp_path / "m")
    model = _base_model(args, LABELS)
    base_query = _encoder_weight(model)
    head_before = model.classifier.weight.detach().clone()
    with torch.no_grad():
        for param in model.bert.parameters():
            param.add_(0.5)

    # when it is averaged with its base at alpha 0.25
    averaged = average_with_base(model, args.base_model, 0.25)

    # then each encoder weight is base + 0.25 x delta, and the head is untouched
    assert averaged > 50
    assert torch.allclose(_encoder_weight(model), base_query + 0.125, atol=1e-6)
    assert model.classifier.weight.equal(head_before)
    # and alpha 0 gives back the base itself; alpha outside [0, 1] is refused
    average_with_base(model, args.base_model, 0.0)
    assert torch.allclose(_encoder_weight(model), base_query, atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        average_with_base(model, args.base_model, 1.5)


def test_a_wise_ft_run_saves_the_average_of_the_fine_tune_and_its_base_with_a_refitted_head(tmp_path):
    # given the same short full fine-tune run twice, without and with WiSE-FT at alpha 0.5
    rows = make_rows(40)
    plain = train_classifier(_args(rows, tmp_path / "plain"))
    wise = train_classifier(_args(rows, tmp_path / "wise", wise_alpha=0.5))

    # then the saved encoder is halfway between the fine-tuned one and the base
    base = _encoder_weight(_base_model(_args(rows, tmp_path / "b"), LABELS))
    fine_tuned = _encoder_weight(plain.artifact_dir)
    assert not torch.allclose(fine_tuned, base, atol=1e-4)  # training moved it
    assert torch.allclose(_encoder_weight(wise.artifact_dir), (fine_tuned + base) / 2, atol=1e-5)
    # and the manifest records the averaging: the fine-tune's own scores before, the averaged model's after
    record = wise.manifest.extra["weight_averaging"]
    assert record["alpha"] == 0.5
    assert record["dev_macro_f1_fine_tuned"] == pytest.approx(plain.manifest.metrics["dev"]["macro_f1"])
    assert record["fine_tuned_held_out"]["accuracy"] == pytest.approx(plain.manifest.metrics["accuracy"])
    assert wise.manifest.metrics["dev"]["macro_f1"] == pytest.approx(record["dev_macro_f1_averaged"])
    assert "weight_averaging" not in plain.manifest.extra
    # and the refitted head is saved: the artifact, reloaded as served, scores what training measured
    assert wise.manifest.metrics["accuracy"] > wise.manifest.metrics["majority_baseline_accuracy"] + 0.3
    assert evaluate_artifact(wise.artifact_dir, wise.test_rows)["accuracy"] == pytest.approx(
        wise.manifest.metrics["accuracy"])


def test_wise_ft_is_refused_for_adapter_methods_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="wise_alpha"):
        _args(make_rows(10), tmp_path / "x", method="lora", wise_alpha=0.5)
