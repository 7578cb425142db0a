"""LoRA-tunes the chat LM on the company's own conversation transcripts.

Input is JSONL, one conversation per line::

    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}

Each conversation is rendered with the model's chat template and the loss is taken on the
assistant's tokens only (its reply and the end-of-turn marker, so it also learns when to
stop); user and system text is context. The result is a ``lora-causal-lm`` artifact: the
peft adapter (safetensors, ~1 MB at r=8 on q/v), the tokenizer and a manifest whose
``base_model`` is the base causal-lm folder; ``ml.generate.load_chat_lm`` merges it.

    python -m ml.finetune.chat_lora --data chats.jsonl --base var/artifacts/chat-lm/default --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase, get_linear_schedule_with_warmup
from transformers import set_seed as hf_set_seed

from ml import devices
from ml.artifacts import ArtifactError, Manifest, new_version_id, read_manifest, sha256_file, write_manifest
from ml.generate import write_dir_atomically

__all__ = ["ChatLoraArgs", "encode_conversation", "load_conversations", "main", "train_chat_lora"]

ROLES = ("system", "user", "assistant")
IGNORE = -100  # label id that torch's cross-entropy skips
MAX_PROBLEMS_SHOWN = 20
Progress = Callable[[dict[str, Any]], None]
Conversation = list[dict[str, str]]


@dataclass
class ChatLoraArgs:
    """Arguments of one LoRA run on the chat LM.

    Attributes:
        data: JSONL file of conversations.
        base_dir: the base ``causal-lm`` artifact folder.
        output_dir: where the adapter artifact is written.
        epochs: passes over the training conversations.
        learning_rate: AdamW step; LoRA trains ~0.1% of the weights, so 1e-4..5e-4.
        batch_size: conversations per step.
        max_length: tokens per conversation; longer ones are cut at the end.
        seed: for the split, the shuffling and the adapter's initialisation.
        max_steps: stop after this many optimizer steps (None: all epochs).
        lora_r: adapter rank.
        lora_alpha: adapter scale numerator (scale = alpha / r).
        lora_dropout: dropout on the adapter input.
        role: registry role written to the manifest.
        job_key: key of the training job, written into the manifest ("" outside a job).
    """

    data: Path
    base_dir: Path
    output_dir: Path
    epochs: int = 3
    learning_rate: float = 2e-4
    batch_size: int = 4
    max_length: int = 512
    seed: int = 42
    max_steps: int | None = None
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    role: str = "chat-lm"
    job_key: str = ""


def _check_conversation(obj: Any) -> list[str]:
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        return ['needs a non-empty "messages" list']
    problems = []
    for i, message in enumerate(obj["messages"]):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            problems.append(f"message {i + 1} needs a role in {'/'.join(ROLES)}")
        elif not isinstance(message.get("content"), str) or not message["content"].strip():
            problems.append(f"message {i + 1} ({message['role']}) has no text content")
    roles = {m.get("role") for m in obj["messages"] if isinstance(m, dict)}
    problems += [f"no {role} message" for role in ("user", "assistant") if role not in roles]
    return problems


def load_conversations(path: Path) -> list[Conversation]:
    """Reads and validates a JSONL file of conversations.

    Args:
        path: the file; blank lines are skipped.

    Returns:
        The conversations, each a list of ``{"role", "content"}`` dicts.

    Raises:
        ValueError: listing every problem by line number (bad JSON, missing ``messages``,
            unknown or missing roles, empty content), or saying the file holds none.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    conversations: list[Conversation] = []
    problems: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"line {lineno}: invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            except RecursionError:  # e.g. 100k "[": the C decoder recurses once per level
                problems.append(f"line {lineno}: JSON nested too deeply")
                continue
            found = _check_conversation(obj)
            if found:
                problems += [f"line {lineno}: {p}" for p in found]
                continue
            conversations.append([{"role": m["role"], "content": m["content"]} for m in obj["messages"]])
    if not conversations and not problems:
        problems.append("the file holds no conversations (it is empty)")
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        tail = f"\n... and {more} more" if more else ""
        raise ValueError(f"{path}: {len(problems)} problem(s) in the training data:\n" + "\n".join(shown) + tail)
    return conversations


def _render(tokenizer: PreTrainedTokenizerBase, messages: Conversation) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    if not isinstance(text, str):
        raise TypeError(f"chat template rendered {type(text).__name__}, expected str")
    return text


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase, messages: Conversation, max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids and labels of one conversation; labels are ``-100`` outside assistant text.

    The template is rendered once; each assistant message is located as the last
    occurrence of its content in the rendering of the conversation up to it (so text the
    template adds, such as a default system prompt, can never be mistaken for it). Tokens
    starting inside an assistant reply or its end-of-turn marker are learned; offsets come
    from the fast tokenizer, so this holds for any prefix-stable template.

    Args:
        tokenizer: a fast tokenizer with a chat template.
        messages: the conversation.
        max_length: tokens kept from the start.

    Returns:
        ``(input_ids, labels)`` of equal length.

    Raises:
        ValueError: the template renders a conversation's start differently on its own.
    """
    text = _render(tokenizer, messages)
    end_marker = tokenizer.eos_token or ""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        upto = _render(tokenizer, messages[: i + 1])
        if not text.startswith(upto):
            raise ValueError("the chat template renders a conversation's start differently on its own")
        start = upto.rfind(message["content"])
        end = start + len(message["content"])
        if end_marker and text.startswith(end_marker, end):
            end += len(end_marker)
        spans.append((start, end))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True, max_length=max_length)
    labels = [
        token if any(s <= begin < e for s, e in spans) else IGNORE
        for token, (begin, _) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
    ]
    return list(enc["input_ids"]), labels


def _batches(
    rows: list[tuple[list[int], list[int]]], size: int, pad_id: int, device: str
) -> list[dict[str, torch.Tensor]]:
    out = []
    for at in range(0, len(rows), size):
        chunk = rows[at : at + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = [ids + [pad_id] * (width - len(ids)) for ids, _ in chunk]
        labels = [lab + [IGNORE] * (width - len(lab)) for _, lab in chunk]
        mask = [[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk]
        out.append(
            {
                "input_ids": torch.tensor(ids, device=device),
                "attention_mask": torch.tensor(mask, device=device),
                "labels": torch.tensor(labels, device=device),
            }
        )
    return out


def _event(name: str, **fields: Any) -> dict[str, Any]:
    return {"event": name, **fields}


def _autocast(info: devices.DeviceInfo) -> Any:
    device_type = "cuda" if info.device == "cuda" else info.device
    return torch.autocast(
        device_type, dtype=info.autocast_dtype or torch.float32, enabled=info.autocast_dtype is not None
    )


def _eval_loss(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], info: devices.DeviceInfo) -> float:
    """Mean loss per assistant token over the held-out batches."""
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode(), _autocast(info):
        for batch in batches:
            n = int((batch["labels"][:, 1:] != IGNORE).sum())  # labels shift by one inside the model
            total += float(model(**batch).loss) * n
            count += n
    model.train()
    return total / max(1, count)


def train_chat_lora(args: ChatLoraArgs, progress: Progress | None = None) -> Manifest:
    """Trains a LoRA adapter on conversations and writes it as an artifact.

    Args:
        args: what to train on and how.
        progress: called with ``{"event": "start"|"step"|"epoch"|"done", ...}``.

    Returns:
        The manifest written to ``args.output_dir``.

    Raises:
        ValueError: the data is invalid or has no assistant tokens within ``max_length``.
        ArtifactError: the base folder is not a causal LM.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    emit = progress or (lambda event: None)
    base_dir, output_dir = Path(args.base_dir).resolve(), Path(args.output_dir)
    if not (base_dir / "config.json").is_file():
        raise ArtifactError(f"base model folder {base_dir} has no config.json")
    conversations = load_conversations(args.data)
    data_hash = sha256_file(Path(args.data))
    hf_set_seed(args.seed)
    info = devices.current()
    tokenizer = AutoTokenizer.from_pretrained(base_dir)  # nosec B615  # local base-model folder, not a hub id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = [encode_conversation(tokenizer, c, args.max_length) for c in conversations]
    rows = [r for r in encoded if any(label != IGNORE for label in r[1][1:])]
    if not rows:
        raise ValueError(f"no assistant tokens within the first {args.max_length} tokens of any conversation")
    random.Random(args.seed).shuffle(rows)  # noqa: S311 - seeded for reproducible runs, not a secret
    # 10% held out for the eval loss once there are 10+ conversations; fewer train on all.
    n_eval = len(rows) // 10 if len(rows) >= 10 else 0
    eval_rows, train_rows = rows[:n_eval], rows[n_eval:]

    # fp32 master weights; base_dir is the local folder checked above, not a hub id.
    base: Any = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)  # nosec B615
    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=["q_proj", "v_proj"],
    )
    model = get_peft_model(base.to(info.device), lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    per_epoch = math.ceil(len(train_rows) / args.batch_size)
    total_steps = per_epoch * args.epochs
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, max(1, total_steps // 10), total_steps)
    eval_batches = _batches(eval_rows, args.batch_size, pad_id, info.device)
    split = {"train": len(train_rows), "eval": len(eval_rows)}
    emit(_event("start", total_steps=total_steps, steps_per_epoch=per_epoch, device=info.device, split=split))

    step, eval_loss = 0, None
    epoch_losses: list[float] = []
    order = random.Random(args.seed + 1)  # noqa: S311 - seeded for reproducible runs, not a secret
    for epoch in range(args.epochs):
        if step >= total_steps:
            break
        order.shuffle(train_rows)
        epoch_losses = []
        for batch in _batches(train_rows, args.batch_size, pad_id, info.device):
            with _autocast(info):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            epoch_losses.append(float(loss.detach()))
            lr = scheduler.get_last_lr()[0]
            emit(_event("step", epoch=epoch + 1, step=step, total_steps=total_steps, loss=epoch_losses[-1], lr=lr))
            if step >= total_steps:
                break
        eval_loss = _eval_loss(model, eval_batches, info) if eval_batches else None
        train_loss = sum(epoch_losses) / len(epoch_losses)
        emit(_event("epoch", epoch=epoch + 1, step=step, train_loss=train_loss, eval_loss=eval_loss))

    metrics: dict[str, Any] = {
        "train_loss": sum(epoch_losses) / len(epoch_losses),  # mean over the last epoch's steps
        "steps": step,
        "train_conversations": len(train_rows),
        "eval_conversations": len(eval_rows),
        "skipped_conversations": len(encoded) - len(rows),
    }
    if eval_loss is not None:
        metrics["eval_loss"] = eval_loss
        metrics["eval_perplexity"] = math.exp(min(eval_loss, 50.0))
    try:
        parent = read_manifest(base_dir).version
    except ArtifactError:
        parent = None
    manifest = Manifest(
        role=args.role,
        kind="lora-causal-lm",
        version=new_version_id(args.role),
        base_model=str(base_dir),
        task="chat",
        data_hash=data_hash,
        metrics=metrics,
        parent_version=parent,
        job_key=args.job_key,
        extra={
            "lora": {
                "r": args.lora_r,
                "alpha": args.lora_alpha,
                "dropout": args.lora_dropout,
                "target_modules": ["q_proj", "v_proj"],
            },
            "max_length": args.max_length,
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "batch_size": args.batch_size,
            "seed": args.seed,
        },
    )

    def write(staging: Path) -> None:
        model.save_pretrained(str(staging), safe_serialization=True)  # adapter weights only
        tokenizer.save_pretrained(staging)

    write_dir_atomically(output_dir, write)
    write_manifest(output_dir, manifest)  # last: its presence marks the artifact complete
    emit(_event("done", artifact_dir=str(output_dir), version=manifest.version, metrics=metrics))
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints progress events as JSON lines."""
    parser = argparse.ArgumentParser(description="LoRA-tune the chat LM on JSONL conversations.")
    parser.add_argument("--data", type=Path, required=True, help='JSONL, one {"messages": [...]} per line')
    parser.add_argument("--base", type=Path, required=True, help="base causal-lm artifact folder")
    parser.add_argument("--out", type=Path, required=True, help="output artifact folder")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    ns = parser.parse_args(argv)
    args = ChatLoraArgs(
        data=ns.data,
        base_dir=ns.base,
        output_dir=ns.out,
        epochs=ns.epochs,
        learning_rate=ns.lr,
        batch_size=ns.batch_size,
        max_length=ns.max_length,
        max_steps=ns.max_steps,
        seed=ns.seed,
    )
    try:
        manifest = train_chat_lora(args, progress=lambda event: print(json.dumps(event), flush=True))
    except (ValueError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(manifest.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
