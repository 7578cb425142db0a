"""LoRA-tunes the chat LM on the company's own conversation transcripts.

Input is JSONL, one conversation per line::

    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}

Each conversation is rendered with the model's chat template and the loss is taken on the
assistant's tokens only (its reply and the end-of-turn marker, so it also learns when to
stop); user and system text is context. The result is a ``lora-causal-lm`` artifact: the
peft adapter (safetensors, ~1 MB at r=8 on q/v), the tokenizer and a manifest whose
``base_model`` is the base causal-lm folder; ``ml.generate.load_chat_lm`` merges it.
Training runs on ``ml.finetune.loop.Trainer``, the classifiers' loop: it can be cancelled,
checkpoints mid-run and resumes exactly, and keeps the adapter of the best held-out loss.

    python -m ml.finetune.chat_lora --data chats.jsonl --base var/artifacts/chat-lm/default --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase, get_scheduler

from ml import devices
from ml.artifacts import (
    ArtifactError,
    Manifest,
    atomic_replace_dir,
    new_version_id,
    read_manifest,
    sha256_file,
    write_manifest,
)
from ml.finetune import checkpoint as ckpt
from ml.finetune.events import Progress, TrainingDone, TrainingEvent, TrainingStarted
from ml.finetune.loop import Evaluation, LoopSettings, Trainer, TrainingCancelled, epoch_batches, seed_all
from ml.finetune.params import CHAT_LM_LR, TrainParams, add_cli_flags, chat_lm_field
from ml.finetune.peft_methods import wrap_for_training

__all__ = ["ChatLoraArgs", "TrainingCancelled", "encode_conversation", "load_conversations", "main",
           "train_chat_lora"]

ROLES = ("system", "user", "assistant")
IGNORE = -100  # label id that torch's cross-entropy skips
MAX_PROBLEMS_SHOWN = 20
LORA_TARGETS = ("q_proj", "v_proj")  # attention query/value projections of the Llama-style chat LM
Conversation = list[dict[str, str]]


@dataclass(kw_only=True)
class ChatLoraArgs(TrainParams):
    """Arguments of one LoRA run on the chat LM (same arguments again = resume).

    The knobs a user may set (epochs, learning rate, batch size, max length, max steps,
    seed, schedule, processes, ...) are inherited from ``ml.finetune.params.TrainParams``;
    batch size and max length default to ``CHAT_LM_DEFAULTS``.

    Attributes:
        data: JSONL file of conversations.
        base_dir: the base ``causal-lm`` artifact folder.
        output_dir: where the adapter artifact is written.
        lora_r: adapter rank.
        lora_alpha: adapter scale numerator (scale = alpha / r).
        lora_dropout: dropout on the adapter input.
        role: registry role written to the manifest.
        job_key: key of the training job, written into the manifest and the checkpoint
            ("" outside a job).
        checkpoint_dir: default ``<output_dir>.ckpt`` beside the output directory.
        keep_checkpoint: keep the checkpoint folder after success.
    """

    data: Path
    base_dir: Path
    output_dir: Path
    batch_size: int = chat_lm_field("batch_size")
    max_length: int = chat_lm_field("max_length")
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    role: str = "chat-lm"
    job_key: str = ""
    checkpoint_dir: Path | None = None
    keep_checkpoint: bool = False

    @property
    def lr(self) -> float:
        return self.learning_rate or CHAT_LM_LR

    @property
    def checkpoint_path(self) -> Path:
        out = Path(self.output_dir)
        return Path(self.checkpoint_dir or out.with_name(f"{out.name}.ckpt"))


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


def _pad(rows: list[tuple[list[int], list[int]]], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    """One right-padded batch: ids, attention mask and labels (``-100`` on padding)."""
    width = max(len(ids) for ids, _ in rows)
    return {
        "input_ids": torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in rows], device=device),
        "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows],
                                       device=device),
        "labels": torch.tensor([lab + [IGNORE] * (width - len(lab)) for _, lab in rows], device=device),
    }


class _ChatTask:
    """Conversation batches (length-bucketed), the LM's own loss, held-out loss per token."""

    def __init__(self, args: ChatLoraArgs, train_rows: list[tuple[list[int], list[int]]],
                 eval_rows: list[tuple[list[int], list[int]]], pad_id: int, device: str) -> None:
        self.args, self.pad_id, self.device = args, pad_id, device
        self.train_rows, self.eval_rows = train_rows, eval_rows
        self.lengths = [len(ids) for ids, _ in train_rows]

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        return epoch_batches(self.lengths, self.args.batch_size, self.args.seed, epoch, bucketing=True)

    def batch_loss(self, model: torch.nn.Module, rows: list[int]) -> torch.Tensor:
        return model(**_pad([self.train_rows[i] for i in rows], self.pad_id, self.device)).loss

    def evaluate(self, model: torch.nn.Module) -> Evaluation | None:
        """Mean loss per assistant token over the held-out conversations (lower is better)."""
        if not self.eval_rows:
            return None
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        with torch.inference_mode():
            for at in range(0, len(self.eval_rows), self.args.batch_size):
                batch = _pad(self.eval_rows[at:at + self.args.batch_size], self.pad_id, self.device)
                n = int((batch["labels"][:, 1:] != IGNORE).sum())  # labels shift by one inside the model
                total += float(model(**batch).loss) * n
                count += n
        model.train(was_training)
        loss = total / max(1, count)
        return Evaluation(score=-loss, eval_loss=loss)


def _fingerprint(args: ChatLoraArgs, data_hash: str) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (anything that changes the run)."""
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items()}
    for key in ("data", "output_dir", "checkpoint_dir", "keep_checkpoint", "checkpoint_every_steps", "job_key",
                "processes"):
        record.pop(key, None)
    return {**record, "learning_rate": args.lr, "data_hash": data_hash}


def train_chat_lora(args: ChatLoraArgs, progress: Progress | None = None, *,
                    should_stop: Callable[[], bool] | None = None, world: Any = None) -> Manifest:
    """Trains a LoRA adapter on conversations and writes it as an artifact.

    Runs on ``ml.finetune.loop.Trainer``: cancellable (``should_stop``), checkpointed every
    ``checkpoint_every_steps`` steps and every epoch, resumed exactly by a re-run with the
    same arguments, the adapter of the epoch with the lowest held-out loss kept.

    Args:
        args: what to train on and how (``processes > 1`` runs ``ml.finetune.distributed``).
        progress: receives ``ml.finetune.events`` (a ``StepDone`` every step).
        should_stop: polled after every step; True saves a checkpoint and cancels.
        world: the data-parallel group when called inside a worker process (internal).

    Returns:
        The manifest written to ``args.output_dir``.

    Raises:
        ValueError: the data is invalid or has no assistant tokens within ``max_length``.
        ArtifactError: the base folder is not a causal LM.
        TrainingCancelled: ``should_stop()`` returned True (a re-run resumes).
    """
    if args.processes > 1 and world is None:
        from ml.finetune.distributed import run_data_parallel

        return run_data_parallel(train_chat_lora, args, progress=progress, should_stop=should_stop)
    base_dir, output_dir = Path(args.base_dir).resolve(), Path(args.output_dir)
    if not (base_dir / "config.json").is_file():
        raise ArtifactError(f"base model folder {base_dir} has no config.json")
    conversations = load_conversations(args.data)
    data_hash = sha256_file(Path(args.data))
    seed_all(args.seed)
    device = world.device if world is not None else devices.current().device
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

    per_epoch = math.ceil(len(train_rows) / args.batch_size)
    total_steps = min(per_epoch * args.epochs, args.max_steps or per_epoch * args.epochs)
    # fp32 master weights; base_dir is the local folder checked above, not a hub id.
    base: Any = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)  # nosec B615
    model = wrap_for_training(base.to(device), "lora", task="causal-lm", r=args.lora_r, alpha=args.lora_alpha,
                              dropout=args.lora_dropout, target_modules=list(LORA_TARGETS))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    scheduler = get_scheduler(args.lr_schedule, optimizer, num_warmup_steps=int(total_steps * args.warmup_ratio),
                              num_training_steps=total_steps)
    ckpt_dir = args.checkpoint_path
    trainer = Trainer(
        model=model, forward_model=world.wrap(model) if world is not None else model, optimizer=optimizer,
        scheduler=scheduler, task=_ChatTask(args, train_rows, eval_rows, pad_id, device),
        settings=LoopSettings(epochs=args.epochs, total_steps=total_steps, patience=args.early_stopping_patience,
                              checkpoint_every_steps=args.checkpoint_every_steps, progress_every=1),
        checkpoint_dir=ckpt_dir, fingerprint=_fingerprint(args, data_hash),
        owner={"job_key": args.job_key, "data_hash": data_hash}, emit=progress, should_stop=should_stop,
        world=world)
    resumed_from = trainer.resume().step
    split = {"train": len(train_rows), "eval": len(eval_rows)}
    trainer.emit(TrainingStarted(total_steps=total_steps, steps_per_epoch=per_epoch, resumed_from_step=resumed_from,
                                 split=split, device=device, method="lora", processes=args.processes))
    run = trainer.run()
    if world is not None and world.rank != 0:
        world.barrier()
        return read_manifest(output_dir)
    last = run.history[-1]
    best = next(h for h in run.history if h["epoch"] == run.best_epoch)
    metrics: dict[str, Any] = {
        "train_loss": last["train_loss"],  # mean over the last epoch's steps
        "steps": run.step,
        "best_epoch": run.best_epoch,
        "resumed_from_step": resumed_from,
        "train_conversations": len(train_rows),
        "eval_conversations": len(eval_rows),
        "skipped_conversations": len(encoded) - len(rows),
    }
    if best["eval_loss"] is not None:
        metrics["eval_loss"] = best["eval_loss"]
        metrics["eval_perplexity"] = math.exp(min(best["eval_loss"], 50.0))
    try:
        parent = read_manifest(base_dir).version
    except ArtifactError:
        parent = None
    manifest = Manifest(
        role=args.role, kind="lora-causal-lm", version=new_version_id(args.role), base_model=str(base_dir),
        task="chat", data_hash=data_hash, metrics=metrics, parent_version=parent, job_key=args.job_key,
        extra={"lora": {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                        "target_modules": list(LORA_TARGETS)},
               "max_length": args.max_length, "epochs": args.epochs, "learning_rate": args.lr,
               "batch_size": args.batch_size, "seed": args.seed, "processes": args.processes})

    def write(staging: Path) -> None:
        model.save_pretrained(str(staging), safe_serialization=True)  # adapter weights only
        (staging / "README.md").unlink(missing_ok=True)  # peft's empty model card
        tokenizer.save_pretrained(staging)
        write_manifest(staging, manifest)

    atomic_replace_dir(output_dir, write)
    if not args.keep_checkpoint:
        ckpt.clear(ckpt_dir)
    trainer.emit(TrainingDone(artifact_dir=str(output_dir), version=manifest.version, metrics=metrics))
    if world is not None:
        world.barrier()
    return manifest


def _print_event(event: TrainingEvent) -> None:
    print(json.dumps(event.to_dict()), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints progress events as JSON lines."""
    parser = argparse.ArgumentParser(description="LoRA-tune the chat LM on JSONL conversations.")
    parser.add_argument("--data", type=Path, required=True, help='JSONL, one {"messages": [...]} per line')
    parser.add_argument("--base", type=Path, required=True, help="base causal-lm artifact folder")
    parser.add_argument("--out", type=Path, required=True, help="output artifact folder")
    add_cli_flags(parser, "chat-lm", defaults=True)
    ns = parser.parse_args(argv)
    knobs = {k: v for k, v in vars(ns).items() if k in ChatLoraArgs.__dataclass_fields__}
    args = ChatLoraArgs(base_dir=ns.base, output_dir=ns.out, **knobs)
    try:
        manifest = train_chat_lora(args, progress=_print_event)
    except (ValueError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(manifest.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
