"""Each PEFT method trains the real MiniLM encoder, saves, reloads through the registry, predicts.

Kept small for CI on one CPU thread: 48 templated rows, max_length 24, batch 12, 10 steps.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from ml.artifacts import Manifest, write_manifest
from ml.finetune import peft_methods

LABELS = ["shipping", "refund", "account"]
TOPICS = {
    "shipping": ["my parcel", "the delivery", "my package", "the courier"],
    "refund": ["a refund", "my money back", "a reimbursement", "a chargeback"],
    "account": ["my password", "my login", "my username", "two-factor login"],
}
VERBS = ["where is", "I need help with", "what about", "please check"]
STEPS = 10


def _rows() -> list[tuple[str, str]]:
    rng = random.Random(0)
    rows = [(f"{verb} {topic}?", label) for label, topics in TOPICS.items()
            for topic in topics for verb in VERBS]
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def base_dir() -> Path:
    from ml.defaults import embedder_weights

    return Path(embedder_weights())


@pytest.fixture(scope="module")
def tokenizer(base_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base_dir))


def _fresh_model(base_dir: Path) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(
        str(base_dir), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)})


def _train(model: torch.nn.Module, tokenizer, rows, method: str) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=peft_methods.DEFAULT_LR[method])
    texts = [t for t, _ in rows]
    targets = torch.tensor([LABELS.index(label) for _, label in rows])
    losses = []
    model.train()
    for step in range(STEPS):
        idx = [(step * 12 + i) % len(rows) for i in range(12)]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=24,
                        return_tensors="pt")
        loss = torch.nn.functional.cross_entropy(model(**enc).logits, targets[idx])
        losses.append(float(loss.detach()))
        extra = peft_methods.auxiliary_loss(model)
        if extra is not None:
            loss = loss + extra
        loss.backward()
        optimizer.step()
        peft_methods.after_optimizer_step(model, step)
        optimizer.zero_grad(set_to_none=True)
    return losses


def _predict(model: torch.nn.Module, tokenizer, texts: list[str]) -> list[str]:
    model.eval()
    enc = tokenizer(texts, padding=True, truncation=True, max_length=24, return_tensors="pt")
    with torch.inference_mode():
        return [LABELS[i] for i in model(**enc).logits.argmax(-1).tolist()]


@pytest.mark.parametrize("method", peft_methods.ADAPTER_METHODS)
def test_method_trains_saves_and_reloads_through_the_registry(method, base_dir, tokenizer, tmp_path):
    from ml.registry import Registry

    # given: a fresh MiniLM classifier wrapped for the method
    rows = _rows()
    model = peft_methods.wrap_for_training(_fresh_model(base_dir), method, total_steps=STEPS)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert trainable < 0.05 * total  # the encoder is frozen; only the adapter and head train

    # when: it trains a few steps and is saved as an artifact
    losses = _train(model, tokenizer, rows, method)
    texts = [t for t, _ in rows]
    before = _predict(model, tokenizer, texts)
    record = peft_methods.adapter_config_record(model)
    model.save_pretrained(str(tmp_path), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp_path))
    write_manifest(tmp_path, Manifest(role="intent", kind="lora-classifier", version=f"intent-{method}",
                                      base_model=str(base_dir), labels=LABELS,
                                      extra={"method": method, "max_length": 24, "adapter": record}))
    loaded = Registry().load_artifact(tmp_path)

    # then: it learned, the artifact holds an adapter (not the encoder), and the reloaded
    # classifier predicts exactly what the trained model predicted
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert record["method"] == method
    assert json.loads(json.dumps(record)) == record
    assert (tmp_path / "adapter_model.safetensors").stat().st_size < 2_000_000  # encoder is ~90 MB
    assert [p.label for p in loaded.predict(texts)] == before
    merged = not isinstance(loaded.model, type(model))
    assert merged == (method != "prompt")  # prompt tuning cannot be merged into the weights


def test_adalora_reallocates_its_rank_budget(base_dir, tokenizer):
    # given: AdaLoRA with a schedule of STEPS steps (budgeting from 10% to 80% of them)
    model = peft_methods.wrap_for_training(_fresh_model(base_dir), "adalora", r=4, total_steps=STEPS)
    config = model.peft_config["default"]
    assert config.rank_pattern is None

    # when: it trains through the schedule
    _train(model, tokenizer, _rows(), "adalora")

    # then: a rank pattern was allocated and the masked ranks total the target budget
    pattern = config.rank_pattern
    assert pattern
    kept = sum(sum(bool(x) for x in mask) for mask in pattern.values())
    assert kept == config.target_r * len(pattern)
    assert kept < config.init_r * len(pattern)

    # and: a run resumed after the final allocation (weights from a checkpoint, pattern lost
    # with the process) recovers the same pattern from the pruned weights and keeps going
    from ml.finetune.checkpoint import load_trainable_state, trainable_state

    resumed = peft_methods.wrap_for_training(_fresh_model(base_dir), "adalora", r=4, total_steps=STEPS)
    load_trainable_state(resumed, trainable_state(model))
    peft_methods.after_optimizer_step(resumed, STEPS - 1)
    assert resumed.peft_config["default"].rank_pattern == pattern


def test_full_is_the_model_itself_and_records_its_size(base_dir):
    model = _fresh_model(base_dir)
    assert peft_methods.wrap_for_training(model, "full") is model
    record = peft_methods.adapter_config_record(model)
    assert record["method"] == "full"
    assert record["trainable_params"] == record["total_params"] > 20_000_000


@pytest.mark.parametrize(("method", "kwargs", "message"), [
    ("adalora", {}, "total_steps"),
    ("qlora", {}, "method must be one of"),
    ("lora", {"task": "tokens"}, "task must be one of"),
])
def test_bad_arguments_are_refused_before_training(method, kwargs, message, base_dir):
    with pytest.raises(ValueError, match=message):
        peft_methods.wrap_for_training(_fresh_model(base_dir), method, **kwargs)


def test_default_lr_covers_every_method():
    assert set(peft_methods.DEFAULT_LR) == set(peft_methods.METHODS)
    assert peft_methods.METHODS[0] == "full"
