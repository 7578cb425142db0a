"""The chat LM: GGUF conversion, loading, and streamed generation behind a bounded gate.

``stream(messages)`` renders the chat template, runs ``model.generate`` in a worker thread
and yields text pieces as they are decoded (``AsyncTextIteratorStreamer``). Generation
stops at a stop string, at ``max_new_tokens``, at end of turn, or as soon as the consumer
stops listening: closing the async generator sets a ``threading.Event`` that a
``StoppingCriteria`` checks after every token, so an abandoned reply costs at most one
more token of compute. Each ``ChatLM`` has one ``GenerationGate`` (see ``ml.lm_gate``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteriaList,
)

from ml import devices
from ml.artifacts import MANIFEST, ArtifactError, Manifest
from ml.defaults import weights_dir
from ml.lm_gate import BusyError, GenerationGate, QueueCallback
from ml.lm_stream import GenerationStats, LoopSafeStreamer, StopWhenSet, held_back, stop_index

if TYPE_CHECKING:
    from ml.registry import Registry

__all__ = [
    "BusyError",
    "ChatLM",
    "GenerationGate",
    "GenerationStats",
    "convert_gguf",
    "load_chat_lm",
    "publish_dir",
    "write_dir_atomically",
]

ROLES = frozenset({"system", "user", "assistant"})
# ChatML markers of SmolLM2; the GGUF metadata names <|im_start|> as eos, which would make
# generate() run past the end of the assistant's turn.
CHATML_END = "<|im_end|>"


def publish_dir(staging: Path, target: Path) -> None:
    """Moves a fully written staging folder into place so no reader sees half of it.

    A missing ``target`` is replaced by one atomic rename. An existing one first loses its
    manifest (so it no longer looks complete), then gets each file by ``os.replace``; the
    caller writes the new manifest last.

    Args:
        staging: a folder on the same filesystem as ``target``.
        target: the artifact directory.
    """
    if not target.exists():
        os.replace(staging, target)
        return
    (target / MANIFEST).unlink(missing_ok=True)
    for entry in staging.iterdir():
        dest = target / entry.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(entry, dest)
    staging.rmdir()


def write_dir_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Has ``write`` fill a staging folder beside ``target``, then publishes it.

    A crash while writing leaves only a hidden ``.<name>-*`` folder, never a ``target``
    that looks complete (the caller writes the manifest after this returns).

    Args:
        target: the artifact directory.
        write: fills the folder it is given.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        staging.chmod(0o755)  # mkdtemp makes it owner-only; workers may run as other users
        write(staging)
        publish_dir(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantises a GGUF chat model once into a safetensors (fp32) folder.

    The GGUF load takes ~20 s; the folder loads in ~0.3 s after. The tokenizer keeps the
    ChatML chat template; its special tokens are corrected (eos = pad = ``<|im_end|>``, no
    automatic BOS), matching the original SmolLM2-Instruct tokenizer.

    Args:
        gguf_path: the ``.gguf`` file.
        out_dir: the folder to create; the caller writes its manifest afterwards.
    """
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise ArtifactError(f"GGUF file {gguf_path} is missing")
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    if CHATML_END in tokenizer.get_vocab():
        tokenizer.eos_token = CHATML_END
        tokenizer.pad_token = CHATML_END
        if model.generation_config is not None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.generation_config.pad_token_id = tokenizer.eos_token_id
    if hasattr(tokenizer, "add_bos_token"):
        tokenizer.add_bos_token = False  # the chat template writes <|im_start|> itself

    def write(staging: Path) -> None:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)

    write_dir_atomically(out_dir, write)


class ChatLM:
    """A causal LM with its tokenizer, chat template, device and admission gate.

    Args:
        model: the loaded causal LM (already on its device, in eval mode).
        tokenizer: its tokenizer, with a chat template.
        version: the artifact version, for logs and stats.
        gate: admission gate; a fresh ``GenerationGate()`` (env-configured) by default.
        info: device profile; ``ml.devices.current()`` by default.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        version: str = "",
        gate: GenerationGate | None = None,
        info: devices.DeviceInfo | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.version = version
        self.gate = gate or GenerationGate()
        self.info = info or devices.current()
        self.context_tokens = int(getattr(model.config, "max_position_embeddings", 2048))
        self._stats_lock = threading.Lock()
        self._requests = 0
        self._tokens = 0
        self._busy_s = 0.0
        self._first_pieces: deque[float] = deque(maxlen=200)  # seconds, recent requests
        # Every generate runs on these long-lived threads. On CPU each thread that computes
        # gets its own OpenMP team; a second team (a fresh thread per request, or the caller's
        # thread) spins against the first and cut 2-thread decoding from 22 to 15 tokens/s here.
        self.executor = ThreadPoolExecutor(max_workers=self.gate.max_concurrent, thread_name_prefix="chat-lm")
        self.last_run: Future[None] | None = None  # latest generate job (tests, debugging)

    # -- prompt ----------------------------------------------------------------------
    def prompt_ids(self, messages: list[dict[str, str]], max_new_tokens: int) -> list[int]:
        """Renders the chat template, dropping the oldest turns if the context is short.

        Raises:
            ValueError: a message is malformed, or even the last turn does not fit.
        """
        if not messages:
            raise ValueError("messages is empty")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise ValueError(f"message {i} needs a role in {sorted(ROLES)}")
            if not isinstance(message.get("content"), str):
                raise ValueError(f"message {i} needs a string content")
        budget = self.context_tokens - max_new_tokens
        kept = [{"role": m["role"], "content": m["content"]} for m in messages]
        while True:
            ids = list(self.tokenizer.apply_chat_template(kept, add_generation_prompt=True, tokenize=True))
            turns = [i for i, m in enumerate(kept) if m["role"] != "system"]
            if len(ids) <= budget:
                return ids
            if len(turns) <= 1:
                raise ValueError(f"prompt of {len(ids)} tokens leaves no room for {max_new_tokens} new tokens")
            del kept[turns[0]]

    def _generate_kwargs(self, max_new_tokens: int, temperature: float, top_p: float) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id,
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False)
        return kwargs

    # -- generation ------------------------------------------------------------------
    async def stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 0.9,
        stop: Sequence[str] = (),
        on_queued: QueueCallback | None = None,
        stats: GenerationStats | None = None,
    ) -> AsyncIterator[str]:
        """Yields the assistant's reply in pieces as it is generated.

        Args:
            messages: chat turns ``{"role": "system"|"user"|"assistant", "content": ...}``.
            max_new_tokens: upper bound on generated tokens.
            temperature: 0 for greedy decoding, else the sampling temperature.
            top_p: nucleus sampling mass (only when sampling).
            stop: strings that end the reply; neither they nor anything after them is
                yielded.
            on_queued: called with the queue position (1 = next) while waiting at the gate.
            stats: filled with this call's figures if given.

        Yields:
            Non-empty text pieces, in order.

        Raises:
            BusyError: the gate's queue is full.
            ValueError: malformed messages or no room for the reply.
            RuntimeError: generation failed in the worker thread.
        """
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        stats = stats if stats is not None else GenerationStats()
        stops = [s for s in stop if s]
        started = time.perf_counter()
        ids = self.prompt_ids(messages, max_new_tokens)
        stats.prompt_tokens = len(ids)
        await self.gate.acquire(on_queued)
        stats.queued_s = time.perf_counter() - started
        cancel = threading.Event()
        criterion = StopWhenSet(cancel, len(ids), stats)
        failure: list[BaseException] = []
        try:
            streamer = LoopSafeStreamer(self.tokenizer, cancel)
            run = self.executor.submit(
                self._run_generate, ids, streamer, criterion, failure,
                self._generate_kwargs(max_new_tokens, temperature, top_p),
            )
        except BaseException:
            self.gate.release()  # the worker never started, so it cannot release
            raise
        self.last_run = run
        pending, finished = "", False
        try:
            async for piece in streamer:
                pending += piece
                cut = stop_index(pending, stops)
                if cut is not None:
                    cancel.set()
                    stats.finish_reason, pending, finished = "stop", pending[:cut], True
                    break
                keep = held_back(pending, stops)
                ready, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
                if ready:
                    if stats.first_piece_s is None:
                        stats.first_piece_s = time.perf_counter() - started
                    yield ready
            else:
                finished = True
            if failure:
                stats.finish_reason = "error"
                raise RuntimeError(f"generation failed: {failure[0]}") from failure[0]
            if pending:
                if stats.first_piece_s is None:
                    stats.first_piece_s = time.perf_counter() - started
                yield pending
            # The text is all out; wait the last step (at most one token) so that, once the
            # stream ends, the gate slot is free and the token count is final.
            await asyncio.wrap_future(run)
        finally:
            cancel.set()  # consumer gone (closed, cancelled, error) or done: stop the worker
            if not finished:
                stats.finish_reason = "cancelled"
            elif not stats.finish_reason:
                stats.finish_reason = "length" if criterion.generated >= max_new_tokens else "eos"
            stats.total_s = time.perf_counter() - started
            self._record(stats)

    def _run_generate(
        self,
        ids: list[int],
        streamer: LoopSafeStreamer,
        criterion: StopWhenSet,
        failure: list[BaseException],
        kwargs: dict[str, Any],
    ) -> None:
        """Worker thread: runs ``generate`` and frees the gate slot when the compute ends."""
        try:
            input_ids = torch.tensor([ids], dtype=torch.long, device=self.info.device)
            with devices.inference_context(self.info):  # inference mode is per thread
                self.model.generate(  # type: ignore[operator]
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([criterion]),
                    **kwargs,
                )
        except BaseException as exc:  # noqa: BLE001 - reported to the consumer, not lost in a thread
            failure.append(exc)
            streamer.end()  # unblocks the consumer
        finally:
            self.gate.release()

    async def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        """The whole reply as one string (``stream`` joined)."""
        return "".join([piece async for piece in self.stream(messages, **kwargs)])

    def generate_text(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        """Synchronous ``complete`` for scripts, tests and evaluation (not for async code).

        Args:
            messages: chat turns.
            **kwargs: the keyword arguments of ``stream``.

        Returns:
            The reply text.

        Raises:
            RuntimeError: called from a running event loop (await ``complete`` there).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop in this thread: the normal, synchronous case
        else:
            raise RuntimeError("generate_text() blocks; inside an event loop use `await lm.complete(...)`")
        return asyncio.run(self.complete(messages, **kwargs))

    # -- stats -----------------------------------------------------------------------
    def _record(self, stats: GenerationStats) -> None:
        with self._stats_lock:
            self._requests += 1
            self._tokens += stats.tokens
            self._busy_s += max(0.0, stats.total_s - stats.queued_s)
            if stats.first_piece_s is not None:
                self._first_pieces.append(stats.first_piece_s)

    def stats(self) -> dict[str, Any]:
        """Totals since load: requests, tokens, tokens/s, time to first piece, queue."""
        with self._stats_lock:
            firsts = sorted(self._first_pieces)
            return {
                "version": self.version,
                "device": self.info.device,
                "requests": self._requests,
                "tokens_generated": self._tokens,
                "tokens_per_s": self._tokens / self._busy_s if self._busy_s else 0.0,
                "first_piece_p50_s": statistics.median(firsts) if firsts else None,
                "active": self.gate.active,
                "waiting": self.gate.waiting,
                "busy_rejections": self.gate.rejected,
            }


def _load_tokenizer(*folders: Path) -> PreTrainedTokenizerBase:
    for folder in folders:
        if (folder / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(folder)
    raise ArtifactError(f"no tokenizer in {', '.join(map(str, folders))}")


def load_chat_lm(path: Path, manifest: Manifest, registry: Registry | None = None) -> ChatLM:
    """Registry loader for ``causal-lm`` and ``lora-causal-lm`` artifacts.

    A LoRA artifact is a peft adapter folder whose ``manifest.base_model`` is the base
    causal-lm folder; the adapter is merged into a private copy of the base so it runs as
    fast as the base model.

    Args:
        path: the artifact directory.
        manifest: its manifest.
        registry: the calling registry (unused: the base is loaded privately because
            merging changes its weights).

    Returns:
        A ready ``ChatLM``.
    """
    info = devices.current()
    if info.device == "cpu" and info.autocast_dtype is not None:
        # bf16 autocast helps the encoders but slowed batch-1 decoding 2.5x here
        # (8.8 vs 22.4 tokens/s, bench/bench_generate.py): the LM decodes in fp32 on CPU.
        info = dataclasses.replace(info, autocast_dtype=None)
    path = Path(path)
    if manifest.kind == "lora-causal-lm":
        from peft import PeftModel

        base_dir = Path(manifest.base_model)
        if not (base_dir / "config.json").is_file():
            raise ArtifactError(f"base model folder {base_dir} of LoRA artifact {path} is missing")
        # Merge in fp32 (exact), then cast to the serving dtype.
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
        tokenizer = _load_tokenizer(path, base_dir)
    else:
        folder = weights_dir(path, manifest)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=info.dtype)
        tokenizer = _load_tokenizer(folder)
    if tokenizer.chat_template is None:
        raise ArtifactError(f"the tokenizer of {path} has no chat template")
    model = model.to(device=info.device, dtype=info.dtype).eval()
    return ChatLM(model, tokenizer, version=manifest.version, info=info)
