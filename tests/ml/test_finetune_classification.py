"""Fine-tuning the real MiniLM encoder on a small, clear 3-class task (full, LoRA, resume).

Kept small for CI on one CPU thread: ~240 templated rows, max_length 32, batch 16.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ml.finetune.checkpoint import STATE
from ml.finetune.classification import (
    ClassifierTrainArgs,
    DatasetInvalid,
    TrainingCancelled,
    evaluate_artifact,
    train_classifier,
)
from ml.finetune.events import EpochDone, StepDone, TrainingDone, TrainingStarted

TOPICS = {
    "shipping": ["my parcel", "the delivery", "my package", "the shipment", "the courier"],
    "refund": ["a refund", "my money back", "a reimbursement", "the return credit", "a chargeback"],
    "account": ["my password", "my login", "my account email", "my username", "two-factor login"],
}
VERBS = {
    "shipping": ["where is", "track", "when will I receive", "has anyone dispatched", "is there news on"],
    "refund": ["I want", "how do I get", "please process", "when do I receive", "can you issue"],
    "account": ["I forgot", "how do I reset", "I cannot change", "please unlock", "help me recover"],
}
TAILS = ["?", " please", " today", " right now?", ", thanks", " for order 1234", " asap", "!"]


def make_rows(n_per_class: int = 80, seed: int = 0) -> list[tuple[str, str]]:
    """Templated questions whose class shows in their vocabulary, with varied wording."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for label in TOPICS:
        seen: set[str] = set()
        while len(seen) < n_per_class:
            text = f"{rng.choice(VERBS[label])} {rng.choice(TOPICS[label])}{rng.choice(TAILS)}"
            text = text[0].upper() + text[1:]
            if text not in seen:
                seen.add(text)
                rows.append((text, label))
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def rows() -> list[tuple[str, str]]:
    return make_rows()


def _args(rows: list[tuple[str, str]], out: Path, **kw: object) -> ClassifierTrainArgs:
    base = dict(data=rows, role="intent", output_dir=out, epochs=2, max_length=32, batch_size=16)
    base.update(kw)
    return ClassifierTrainArgs(**base)  # type: ignore[arg-type]


def test_full_finetune_beats_majority_baseline(rows, tmp_path):
    # given a clear 3-class task and a progress listener
    events: list[dict] = []

    # when the whole encoder is fine-tuned for 2 epochs (24 steps)
    result = train_classifier(_args(rows, tmp_path / "full", learning_rate=1e-4),
                              progress=events.append)

    # then the test split is classified far better than by always guessing the majority class
    metrics = result.manifest.metrics
    assert metrics["evaluated_on"] == "test"
    assert metrics["accuracy"] > metrics["majority_baseline_accuracy"] + 0.3
    assert result.manifest.kind == "hf-classifier"
    assert result.manifest.labels == ["account", "refund", "shipping"]
    assert set(result.manifest.extra) >= {"max_length", "method", "epochs_run", "best_epoch",
                                          "split", "train_args"}
    assert {"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion_matrix",
            "dev"} <= set(metrics)
    art = result.artifact_dir
    assert (art / "config.json").is_file()
    assert (art / "model.safetensors").is_file()
    assert (art / "manifest.json").is_file()
    assert (art / "tokenizer.json").is_file()
    assert not (tmp_path / "full.ckpt").exists()  # cleared after success
    # and the artifact, loaded the way it is served, scores the same on the same rows
    assert evaluate_artifact(art, result.test_rows)["accuracy"] == pytest.approx(metrics["accuracy"])
    # and the listener heard steps and epochs with the dev report
    kinds = {type(e) for e in events}
    assert {TrainingStarted, StepDone, EpochDone, TrainingDone} <= kinds
    epoch_events = [e for e in events if isinstance(e, EpochDone)]
    assert len(epoch_events) == 2
    assert "macro_f1" in epoch_events[0].dev
    step = next(e for e in events if isinstance(e, StepDone))
    assert step.epoch == 1 and step.total_steps == 24 and step.loss > 0


def test_lora_adapter_beats_baseline_and_reloads_identically(rows, tmp_path):
    # given a LoRA run (2e-3: 24 steps are too few for the 5e-4 default to move the adapters far)
    result = train_classifier(_args(rows, tmp_path / "lora", method="lora", learning_rate=2e-3))

    # then it beats the majority baseline and saved a small adapter with the head inside
    metrics = result.manifest.metrics
    assert metrics["accuracy"] > metrics["majority_baseline_accuracy"] + 0.3
    art = result.artifact_dir
    assert result.manifest.kind == "lora-classifier"
    assert (art / "adapter_model.safetensors").is_file()
    assert (art / "adapter_config.json").is_file()
    assert not (art / "model.safetensors").exists()
    assert (art / "adapter_model.safetensors").stat().st_size < 2_000_000
    assert Path(result.manifest.base_model).is_dir()

    # when reloaded with plain transformers + peft (and the pooling the manifest names)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ml.mean_pooling import apply_pooling

    labels = result.manifest.labels
    base = AutoModelForSequenceClassification.from_pretrained(result.manifest.base_model,
                                                              num_labels=len(labels))
    assert apply_pooling(base, result.manifest.extra["pooling"]) == "mean"
    model = PeftModel.from_pretrained(base, str(art)).eval()
    tok = AutoTokenizer.from_pretrained(str(art))
    texts = [t for t, _ in result.test_rows]
    with torch.inference_mode():
        enc = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        reloaded = [labels[i] for i in model(**enc).logits.argmax(-1).tolist()]

    # then it predicts exactly what the trained model predicted, and the gate agrees
    assert reloaded == result.test_predictions
    report = evaluate_artifact(art, result.test_rows)
    assert report["confusion_matrix"] == metrics["confusion_matrix"]


def test_cancel_then_resume_from_checkpoint(rows, tmp_path):
    # given a run that is asked to stop after 5 optimizer steps
    args = _args(rows, tmp_path / "resumed", method="lora", checkpoint_every_steps=3)
    steps = {"n": 0}

    def stop_after_5() -> bool:
        steps["n"] += 1
        return steps["n"] >= 5

    with pytest.raises(TrainingCancelled) as cancelled:
        train_classifier(args, should_stop=stop_after_5)
    assert cancelled.value.step == 5
    assert (args.checkpoint_path / STATE).is_file()
    assert not args.output_dir.exists()

    # when the same arguments run again
    events: list[dict] = []
    result = train_classifier(_args(rows, tmp_path / "resumed", method="lora",
                                    checkpoint_every_steps=3), progress=events.append)

    # then it resumes at step 5, finishes both epochs and writes the artifact
    assert result.resumed_from_step == 5
    assert isinstance(events[0], TrainingStarted)
    assert events[0].resumed_from_step == 5
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[-1]["step"] == events[0].total_steps
    assert (result.artifact_dir / "adapter_model.safetensors").is_file()
    assert not args.checkpoint_path.exists()
    # and it trained exactly as an uninterrupted run does (batch order and RNG restored)
    straight = train_classifier(_args(rows, tmp_path / "straight", method="lora"))
    assert [h["train_loss"] for h in result.history] == pytest.approx(
        [h["train_loss"] for h in straight.history], rel=1e-4)


def test_invalid_data_is_rejected_before_training(tmp_path):
    # given rows of a single class
    rows = [(f"where is my parcel number {i}", "shipping") for i in range(20)]

    # when training is asked for, then it fails on validation and writes nothing
    with pytest.raises(DatasetInvalid) as invalid:
        train_classifier(_args(rows, tmp_path / "one"))
    assert any("only one class" in e for e in invalid.value.report.errors)
    assert not (tmp_path / "one").exists()
    assert not (tmp_path / "one.ckpt").exists()


def test_checkpoint_of_another_job_is_not_resumed(rows, tmp_path):
    # given a run of job "a" cancelled after 2 steps, its checkpoint on disk
    def stop_after_2(counter={"n": 0}) -> bool:  # noqa: B006 - call counter of this test only
        counter["n"] += 1
        return counter["n"] >= 2

    args = _args(rows, tmp_path / "out", method="lora", epochs=1, job_key="job-a")
    with pytest.raises(TrainingCancelled):
        train_classifier(args, should_stop=stop_after_2)
    assert (args.checkpoint_path / STATE).is_file()

    # when job "b" runs with the same arguments into the same folders
    result = train_classifier(_args(rows, tmp_path / "out", method="lora", epochs=1, job_key="job-b"))

    # then it trained from the start, recorded its own key, and job a's checkpoint was set aside
    assert result.resumed_from_step == 0
    assert result.manifest.job_key == "job-b"
    assert len(list(tmp_path.glob("out.ckpt.refused-*"))) == 1


def test_two_data_parallel_processes_train_as_well_as_one_and_resume(rows, tmp_path):
    # given a LoRA run split over 2 CPU processes (gloo), cancelled after its 3rd step
    # (one epoch, 12 steps: at 2e-3 the adapters already separate the classes after it)
    def dp_args(**kw: object) -> ClassifierTrainArgs:
        return _args(rows, tmp_path / "dp", method="lora", learning_rate=2e-3, processes=2, epochs=1, **kw)

    calls = {"n": 0}

    def stop_after_3() -> bool:
        calls["n"] += 1
        return calls["n"] >= 3

    with pytest.raises(TrainingCancelled) as cancelled:
        train_classifier(dp_args(), should_stop=stop_after_3)
    assert cancelled.value.step == 3
    assert (dp_args().checkpoint_path / STATE).is_file()

    # when the same arguments run again, and the same run is made by one process
    events: list = []
    parallel = train_classifier(dp_args(), progress=events.append)
    single = train_classifier(_args(rows, tmp_path / "single", method="lora", learning_rate=2e-3, epochs=1))

    # then the parallel run resumed at step 3, took the same optimizer steps as one process
    assert parallel.resumed_from_step == 3
    assert events[0].processes == 2
    assert [h["step"] for h in parallel.history] == [h["step"] for h in single.history]
    # and its held-out macro-F1 is within noise of the single process's, far above the baseline
    dp_metrics, one_metrics = parallel.manifest.metrics, single.manifest.metrics
    assert dp_metrics["accuracy"] > dp_metrics["majority_baseline_accuracy"] + 0.3
    assert abs(dp_metrics["macro_f1"] - one_metrics["macro_f1"]) <= 0.1
    # and rank 0 alone wrote one artifact that reloads to the same predictions
    assert evaluate_artifact(parallel.artifact_dir, parallel.test_rows)["accuracy"] == pytest.approx(
        dp_metrics["accuracy"])
    assert not dp_args().checkpoint_path.exists()


def test_head_only_phase_leaves_the_encoder_untouched_and_the_head_learns_faster(rows, tmp_path):
    # given a run whose only epoch is the head-only phase, with a 10x head learning rate
    from safetensors.torch import load_file

    from ml.defaults import embedder_weights
    from ml.finetune.classification import _build_model, _optimizer
    from ml.finetune.loop import head_parameter_names

    args = _args(rows[:60], tmp_path / "head", epochs=1, head_only_epochs=1, head_lr_multiplier=10.0,
                 learning_rate=1e-4, max_length=16)

    # then the optimizer gives the head (and only the head) 10x the encoder's rate
    model = _build_model(args, ["account", "refund", "shipping"])
    head = head_parameter_names(model)
    assert {n.split(".")[0] for n in head} == {"classifier"}  # mean pooling: no pooler weights
    rates = {g["lr"] for g in _optimizer(model, args, head).param_groups}
    assert rates == {1e-4, 1e-3}

    # when it trains
    result = train_classifier(args)

    # then the saved encoder equals the base encoder, the head trained, and no [CLS] pooler is saved
    saved = load_file(str(result.artifact_dir / "model.safetensors"))
    base = load_file(str(embedder_weights() / "model.safetensors"))
    for name in ("encoder.layer.0.attention.self.query.weight", "encoder.layer.5.output.dense.weight"):
        assert saved[f"bert.{name}"].equal(base[name])
    assert "bert.pooler.dense.weight" not in saved
    assert result.manifest.extra["pooling"] == "mean"


def test_the_mean_pooling_head_reads_the_sentence_vector_the_frozen_probe_reads(tmp_path):
    # given the fine-tune model of the bundled MiniLM (mean pooling, the default) and its embedder
    import torch
    from transformers import AutoTokenizer

    from ml.defaults import embedder_weights
    from ml.embeddings import Embedder
    from ml.finetune.classification import _build_model

    texts = ["Where is my parcel?", "I forgot my password and cannot log in to my account today"]
    args = _args([], tmp_path / "m")
    model = _build_model(args, ["a", "b"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(embedder_weights()))
    enc = tokenizer(texts, padding=True, return_tensors="pt")  # the short text is padded

    # when the encoder pools the padded batch
    with torch.no_grad():
        pooled = model.base_model(**enc).pooler_output

    # then each row is the embedder's sentence vector (mask-averaged states, before normalising)
    expected = Embedder(embedder_weights()).embed(texts)
    got = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    assert abs(got - expected).max() < 1e-4
    # and BERT's [CLS] pooler (pooling="cls") gives another vector
    cls_model = _build_model(_args([], tmp_path / "c", pooling="cls"), ["a", "b"]).eval()
    with torch.no_grad():
        cls_pooled = torch.nn.functional.normalize(cls_model.base_model(**enc).pooler_output, dim=-1).numpy()
    assert abs(cls_pooled - expected).max() > 0.1


def test_an_artifact_keeps_its_pooling_when_reloaded(rows, tmp_path):
    # given a [CLS]-pooled LoRA artifact and a mean-pooled one, trained briefly on the same rows
    from ml.artifacts import read_manifest
    from ml.sequence_classifier import load_sequence_classifier

    results = {pooling: train_classifier(_args(rows[:90], tmp_path / pooling, method="lora", epochs=1,
                                               max_length=16, pooling=pooling))
               for pooling in ("cls", "mean")}

    for pooling, result in results.items():
        # when each is loaded the way the registry loads it
        manifest = read_manifest(result.artifact_dir)
        classifier = load_sequence_classifier(result.artifact_dir, manifest, registry=None)  # type: ignore[arg-type]

        # then it pools as it was trained, and predicts what training measured
        assert manifest.extra["pooling"] == pooling
        assert classifier.labels == ["account", "refund", "shipping"]
        logits, _ = classifier.logits_and_features([t for t, _ in result.test_rows])
        assert [classifier.labels[i] for i in logits.argmax(1)] == result.test_predictions


def test_an_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling must be one of mean, cls"):
        _args([("a", "x")], Path("/tmp/unused"), pooling="max")


def test_an_mpnet_head_reads_the_mean_of_the_token_states():
    # given a small MPNet classifier (its head reads position 0 through dense + tanh + out_proj)
    import torch
    from transformers import MPNetConfig, MPNetForSequenceClassification

    from ml.mean_pooling import pooling_of, use_mean_pooling

    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, num_labels=3, hidden_dropout_prob=0.0)
    model = MPNetForSequenceClassification(config).eval()
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    assert pooling_of(model) == "cls"

    # when it is made to mean-pool
    assert use_mean_pooling(model) and use_mean_pooling(model)  # twice: hooked once
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
        hidden = model.mpnet(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        mean = (hidden * m).sum(1) / m.sum(1)
        head = model.classifier
        expected = head.out_proj(torch.tanh(head.dense(mean)))

    # then the head read the mask-averaged states (padding excluded), not the first token
    assert pooling_of(model) == "mean"
    assert torch.allclose(logits, expected, atol=1e-5)
    assert not torch.allclose(logits, head.out_proj(torch.tanh(head.dense(hidden[:, 0]))), atol=1e-3)


def test_the_head_starts_as_a_probe_fitted_on_the_frozen_sentence_vectors(rows, tmp_path):
    # given the model a fine-tune starts from, and rows it has not seen
    import torch
    from transformers import AutoTokenizer

    from ml.defaults import embedder_weights
    from ml.finetune.classification import _base_model
    from ml.finetune.probe_head import init_head_from_probe

    labels = ["account", "refund", "shipping"]
    train, unseen = rows[:60], rows[60:180]
    tokenizer = AutoTokenizer.from_pretrained(str(embedder_weights()))

    def accuracy(model: torch.nn.Module) -> float:
        enc = tokenizer([t for t, _ in unseen], padding=True, return_tensors="pt")
        with torch.no_grad():
            predicted = model.eval()(**enc).logits.argmax(-1).tolist()
        return sum(labels[i] == y for i, (_, y) in zip(predicted, unseen, strict=True)) / len(unseen)

    model = _base_model(_args(train, tmp_path / "m"), labels)
    random_head = accuracy(model)

    # when its head is fitted as a probe on 60 rows (no gradient step on the encoder)
    encoder_before = model.bert.encoder.layer[0].attention.self.query.weight.clone()
    assert init_head_from_probe(model, tokenizer, [t for t, _ in train], [labels.index(y) for _, y in train],
                                max_length=32, device="cpu", balanced=True, seed=0)

    # then it already classifies unseen rows, the encoder is untouched, and a run records the recipe
    probe_head = accuracy(model)
    assert probe_head >= 0.9 > random_head + 0.2
    assert model.bert.encoder.layer[0].attention.self.query.weight.equal(encoder_before)
    for head_init in ("probe", "random"):
        result = train_classifier(_args(train, tmp_path / head_init, epochs=1, max_steps=1, max_length=16,
                                        head_init=head_init))
        assert result.manifest.extra["head_init"] == result.manifest.extra["train_args"]["head_init"] == head_init


def test_label_smoothing_spreads_part_of_each_target_over_the_other_labels(rows, tmp_path):
    # given the classifier's loss with and without label smoothing, on the same rows and model
    import torch
    from transformers import AutoTokenizer

    from ml.finetune.classification import _build_model, _ClassifierTask
    from ml.finetune.splits import Split

    labels = ["account", "refund", "shipping"]
    split = Split(train=rows[:8], dev=[], test=[])
    tokenizer = AutoTokenizer.from_pretrained(str(_args(rows, tmp_path / "x").base_model))
    torch.manual_seed(0)
    model = _build_model(_args(rows, tmp_path / "x"), labels).eval()
    losses = {}
    for smoothing in (0.0, 0.2):
        args = _args(rows, tmp_path / "x", label_smoothing=smoothing, class_weighting="none")
        task = _ClassifierTask(args, tokenizer, split, labels, "cpu")
        with torch.no_grad():
            losses[smoothing] = float(task.batch_loss(model, list(range(8))))
            feats = tokenizer([t for t, _ in split.train], padding=True, truncation=True, max_length=32,
                              return_tensors="pt")
            log_p = torch.log_softmax(model(**feats).logits.float(), dim=-1)
    # then the smoothed loss is 0.8 x cross-entropy + 0.2 x the mean of -log p over all labels
    gold = torch.tensor([labels.index(y) for _, y in split.train])
    nll = float(-log_p[torch.arange(8), gold].mean())
    uniform = float(-log_p.mean())
    assert losses[0.0] == pytest.approx(nll, rel=1e-4)
    assert losses[0.2] == pytest.approx(0.8 * nll + 0.2 * uniform, rel=1e-4)
    # and out-of-range values are refused before any work
    from ml.finetune.params import param_specs

    spec = next(s for s in param_specs("classifier") if s.name == "label_smoothing")
    with pytest.raises(ValueError, match="label_smoothing"):
        spec.check(0.9)
