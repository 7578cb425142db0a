"""LoRA tuning of the chat LM: data validation, assistant-only labels, train, reload, generate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ml.artifacts import read_manifest, sha256_file
from ml.finetune.chat_lora import (
    IGNORE,
    ChatLoraArgs,
    encode_conversation,
    load_conversations,
    train_chat_lora,
)
from ml.finetune.events import StepDone, TrainingDone, TrainingStarted
from ml.finetune.loop import TrainingCancelled
from ml.generate import ChatLM, GenerationStats

TOPICS = ["my order", "a refund", "my password", "the invoice", "delivery", "my account"]


def _conversations() -> list[dict]:
    rows = []
    for i in range(12):
        topic = TOPICS[i % len(TOPICS)]
        messages = [
            {"role": "user", "content": f"Hi, I need help with {topic}."},
            {"role": "assistant", "content": f"Sure, I can help with {topic}. What is the problem?"},
        ]
        if i % 3 == 0:
            messages.insert(0, {"role": "system", "content": "You are the support assistant of Acme."})
        rows.append({"messages": messages})
    return rows


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base_dir(registry) -> Path:
    return registry.active("chat-lm").path


def test_labels_cover_only_the_assistant_replies(registry):
    # given a conversation whose user text also occurs in the default system prompt
    tokenizer = registry.get("chat-lm").tokenizer
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "Hello there."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "You are welcome."},
    ]

    # when it is encoded
    ids, labels = encode_conversation(tokenizer, messages, max_length=256)

    # then exactly the replies and their end-of-turn markers are learned
    learned = tokenizer.decode([t for t in labels if t != IGNORE])
    assert learned == "Hello there.<|im_end|>You are welcome.<|im_end|>"
    assert len(ids) == len(labels)


def test_truncation_keeps_the_start(registry):
    tokenizer = registry.get("chat-lm").tokenizer
    messages = _conversations()[1]["messages"]

    ids, labels = encode_conversation(tokenizer, messages, max_length=10)

    assert len(ids) == len(labels) == 10


def test_bad_jsonl_names_the_line(tmp_path):
    good = json.dumps(_conversations()[0])
    path = _write(tmp_path / "bad.jsonl", [good, '{"messages": [', good])

    with pytest.raises(ValueError, match=r"line 2: invalid JSON"):
        load_conversations(path)


def test_deeply_nested_jsonl_names_the_line(tmp_path):
    good = json.dumps(_conversations()[0])
    path = _write(tmp_path / "deep.jsonl", [good, "[" * 100_000, good])

    with pytest.raises(ValueError, match=r"line 2: JSON nested too deeply"):
        load_conversations(path)


def test_missing_roles_and_bad_messages_are_all_listed(tmp_path):
    path = _write(
        tmp_path / "roles.jsonl",
        [
            json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
            json.dumps({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": ""}]}),
            json.dumps({"text": "no messages"}),
        ],
    )

    with pytest.raises(ValueError, match="5 problem") as exc:
        load_conversations(path)

    message = str(exc.value)
    assert "line 1: no assistant message" in message
    assert "line 2: message 1 needs a role" in message
    assert "line 2: message 2 (assistant) has no text content" in message
    assert "line 2: no user message" in message
    assert 'line 3: needs a non-empty "messages" list' in message


def test_empty_file_is_rejected(tmp_path):
    path = _write(tmp_path / "empty.jsonl", [""])

    with pytest.raises(ValueError, match="empty"):
        load_conversations(path)


def test_train_writes_an_adapter_that_reloads_and_generates(tmp_path, base_dir, registry):
    # given a dozen tiny conversations
    data = _write(tmp_path / "chats.jsonl", [json.dumps(row) for row in _conversations()])
    out = tmp_path / "chat-lora"
    events: list[dict] = []

    # when a few LoRA steps are trained on them
    manifest = train_chat_lora(
        ChatLoraArgs(data=data, base_dir=base_dir, output_dir=out, max_steps=4, max_length=64, batch_size=4),
        progress=events.append,
    )

    # then the artifact holds the adapter, tokenizer and a complete manifest
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "tokenizer_config.json").is_file()
    on_disk = read_manifest(out)
    assert on_disk.version == manifest.version
    assert on_disk.kind == "lora-causal-lm"
    assert on_disk.role == "chat-lm"
    assert Path(on_disk.base_model) == base_dir.resolve()
    assert on_disk.data_hash == sha256_file(data)
    assert math.isfinite(on_disk.metrics["train_loss"])
    assert math.isfinite(on_disk.metrics["eval_loss"])
    assert on_disk.metrics["steps"] == 4
    assert on_disk.metrics["eval_conversations"] == 1
    assert [e.step for e in events if isinstance(e, StepDone)] == [1, 2, 3, 4]
    assert isinstance(events[-1], TrainingDone)
    assert not (tmp_path / "chat-lora.ckpt").exists()  # cleared after success
    assert not list(tmp_path.glob(".chat-lora-*"))

    # and it reloads through the registry as a chat model that generates
    lm = registry.load_artifact(out)
    assert isinstance(lm, ChatLM)
    base = registry.get("chat-lm")
    assert lm is not base
    merged_q = lm.model.model.layers[0].self_attn.q_proj.weight
    assert not merged_q.equal(base.model.model.layers[0].self_attn.q_proj.weight)  # adapter merged in
    stats = GenerationStats()
    question = [{"role": "user", "content": "Hi, I need help with my order."}]
    text = lm.generate_text(question, max_new_tokens=12, stats=stats)
    assert isinstance(text, str)
    assert 1 <= stats.tokens <= 12


def test_cancel_checkpoints_and_a_rerun_resumes_exactly(tmp_path, base_dir):
    # given a chat-LM run asked to stop after its 2nd optimizer step
    data = _write(tmp_path / "chats.jsonl", [json.dumps(row) for row in _conversations()])

    def args(out: str) -> ChatLoraArgs:
        return ChatLoraArgs(data=data, base_dir=base_dir, output_dir=tmp_path / out, epochs=2, max_length=48,
                            batch_size=4, checkpoint_every_steps=0)

    calls = {"n": 0}

    def stop_after_2() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    with pytest.raises(TrainingCancelled) as cancelled:
        train_chat_lora(args("resumed"), should_stop=stop_after_2)

    # then it stopped at step 2 with a checkpoint and no artifact
    assert cancelled.value.step == 2
    assert (tmp_path / "resumed.ckpt" / "state.pt").is_file()
    assert not (tmp_path / "resumed").exists()

    # when the same arguments run again
    events: list = []
    resumed = train_chat_lora(args("resumed"), progress=events.append)

    # then it resumed at step 2 and ended where an uninterrupted run ends, with the same losses
    assert isinstance(events[0], TrainingStarted)
    assert events[0].resumed_from_step == 2
    straight = train_chat_lora(args("straight"))
    assert resumed.metrics["resumed_from_step"] == 2
    assert resumed.metrics["steps"] == straight.metrics["steps"] == 6
    assert resumed.metrics["train_loss"] == pytest.approx(straight.metrics["train_loss"], rel=1e-4)
    assert resumed.metrics["eval_loss"] == pytest.approx(straight.metrics["eval_loss"], rel=1e-4)
