"""The chat LM: loading, prompts, and streamed generation through the shared decode loop.

``stream(messages)`` renders the chat template, waits for a slot at the model's
``GenerationGate`` and hands the prompt to the model's ``DecodeLoop`` (``ml.batch_decode``),
which prefills it on the compute lane and then decodes it in one continuous batch with
every other active stream. Text pieces come back as they are decoded. Generation stops at
a stop string, at ``max_new_tokens``, at end of turn, or as soon as the consumer stops
listening: closing the async generator sets the sequence's cancel flag, which the loop
checks before every step, so an abandoned reply costs at most one more step.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ml import devices
from ml.artifacts import ArtifactError, Manifest
from ml.batch_decode import DecodeLoop, Finished, SamplingParams
from ml.compute_lane import ComputeLane, default_lane
from ml.cpu_linear import use_skinny_linears
from ml.defaults import weights_dir
from ml.lm_artifacts import CHATML_END, convert_gguf, publish_dir, write_dir_atomically
from ml.lm_gate import BusyError, GenerationGate, QueueCallback, default_concurrency
from ml.lm_stream import GenerationStats

if TYPE_CHECKING:
    from ml.registry import Registry

__all__ = [
    "CHATML_END",
    "BusyError",
    "ChatLM",
    "GenerationGate",
    "GenerationStats",
    "SamplingParams",
    "convert_gguf",
    "load_chat_lm",
    "publish_dir",
    "write_dir_atomically",
]

ROLES = frozenset({"system", "user", "assistant"})


class ChatLM:
    """A causal LM with its tokenizer, chat template, device, admission gate and decode loop.

    Args:
        model: the loaded causal LM (already on its device, in eval mode).
        tokenizer: its tokenizer, with a chat template.
        version: the artifact version, for logs and stats.
        gate: admission gate; by default one of ``default_concurrency(device)`` slots.
        info: device profile; ``ml.devices.current()`` by default.
        prefill_model: the model prompts are prefilled with (see ``DecodeLoop``); ``model`` by default.
        lane: the compute lane all its torch work runs on; the process-wide one if None.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        version: str = "",
        gate: GenerationGate | None = None,
        info: devices.DeviceInfo | None = None,
        prefill_model: PreTrainedModel | None = None,
        lane: ComputeLane | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.version = version
        self.info = info or devices.current()
        self.gate = gate or GenerationGate(max_concurrent=default_concurrency(self.info.is_gpu))
        self._lane = lane
        self.decoder = DecodeLoop(model, tokenizer, info=self.info, prefill_model=prefill_model, lane=lane)
        self.context_tokens = int(getattr(model.config, "max_position_embeddings", 2048))
        self._stats_lock = threading.Lock()
        self._requests = 0
        self._tokens = 0
        self._busy_s = 0.0
        self._first_pieces: deque[float] = deque(maxlen=200)  # seconds, recent requests
        self.last_run: Future[str] | None = None  # latest sequence's ``done`` (tests, debugging)

    @property
    def lane(self) -> ComputeLane:
        """The compute lane its prefill and decode steps run on."""
        return self._lane if self._lane is not None else default_lane()

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
        seed: int | None = None,
    ) -> AsyncIterator[str]:
        """Yields the assistant's reply in pieces as it is generated.

        Bad input and a full queue raise from the first ``__anext__``, before any text, so
        an HTTP layer can still answer with a 4xx/429 status.

        Args:
            messages: chat turns ``{"role": "system"|"user"|"assistant", "content": ...}``.
            max_new_tokens: upper bound on generated tokens.
            temperature: 0 for greedy decoding, else the sampling temperature.
            top_p: nucleus sampling mass (only when sampling).
            stop: strings (or one string) that end the reply; neither they nor anything
                after them is yielded.
            on_queued: called with the queue position (1 = next) while waiting at the gate.
            stats: filled with this call's figures if given.
            seed: makes sampling reproducible (ignored when greedy).

        Yields:
            Non-empty text pieces, in order.

        Raises:
            BusyError: the gate's queue is full.
            ValueError: malformed messages or parameters, or no room for the reply.
            RuntimeError: generation failed in the decode loop.
        """
        stops = (stop,) if isinstance(stop, str) else tuple(stop)  # OpenAI's "stop" may be one string
        params = SamplingParams(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stops
        )
        stats = stats if stats is not None else GenerationStats()
        started = time.perf_counter()
        ids = self.prompt_ids(messages, max_new_tokens)
        stats.prompt_tokens = len(ids)
        await self.gate.acquire(on_queued)
        stats.queued_s = time.perf_counter() - started
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[str | Finished] = asyncio.Queue()

        def sink(event: str | Finished) -> None:  # lane thread -> this loop
            loop.call_soon_threadsafe(events.put_nowait, event)

        try:
            seq = self.decoder.submit(ids, params, sink=sink, stats=stats, release=self.gate.release)
        except BaseException:
            self.gate.release()  # the loop never saw it, so it cannot release
            raise
        self.last_run = seq.done
        finished = False
        try:
            while True:
                event = await events.get()
                if isinstance(event, str):
                    if stats.first_piece_s is None:
                        stats.first_piece_s = time.perf_counter() - started
                    yield event
                    continue
                finished = True
                stats.finish_reason = event.reason
                if event.error is not None:
                    raise RuntimeError(f"generation failed: {event.error}") from event.error
                break
        finally:
            if not finished:  # consumer gone (closed, cancelled, error): leave the batch
                seq.cancel()
                stats.finish_reason = "cancelled"
            stats.total_s = time.perf_counter() - started
            self._record(stats)

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
        """Totals since load: requests, tokens, tokens/s per stream, first piece, queue, batch."""
        with self._stats_lock:
            firsts = sorted(self._first_pieces)
            return {
                "version": self.version,
                "device": self.info.device,
                "prefill_dtype": str(self.decoder.prefill_model.dtype).removeprefix("torch."),
                "requests": self._requests,
                "tokens_generated": self._tokens,
                "tokens_per_s": self._tokens / self._busy_s if self._busy_s else 0.0,
                "first_piece_p50_s": statistics.median(firsts) if firsts else None,
                "active": self.gate.active,
                "waiting": self.gate.waiting,
                "busy_rejections": self.gate.rejected,
                "max_concurrent": self.gate.max_concurrent,
                **self.decoder.stats(),
            }


def _load_tokenizer(*folders: Path) -> PreTrainedTokenizerBase:
    for folder in folders:
        if (folder / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(folder)  # nosec B615  # local artifact folder, not a hub id
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
    bf16_prefill = False
    if info.device == "cpu" and info.autocast_dtype is not None:
        # bf16 autocast helps the encoders but slowed batch-1 decoding 2.5x here
        # (8.8 vs 22.4 tokens/s, bench/bench_generate.py): the LM decodes in fp32 on CPU.
        # Prompts are matrix-sized, so a bf16 copy of the weights prefills them (below).
        info = dataclasses.replace(info, autocast_dtype=None)
        bf16_prefill = os.environ.get("TRELLIS_LM_BF16_PREFILL", "1") != "0"
    path = Path(path)
    if manifest.kind == "lora-causal-lm":
        from peft import PeftModel

        base_dir = Path(manifest.base_model)
        if not (base_dir / "config.json").is_file():
            raise ArtifactError(f"base model folder {base_dir} of LoRA artifact {path} is missing")
        # Merge in fp32 (exact), then cast to the serving dtype.
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)  # nosec B615  # checked local folder
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
        tokenizer = _load_tokenizer(path, base_dir)
    else:
        folder = weights_dir(path, manifest)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=info.dtype)  # nosec B615  # local artifact folder
        tokenizer = _load_tokenizer(folder)
    if tokenizer.chat_template is None:
        raise ArtifactError(f"the tokenizer of {path} has no chat template")
    model = model.to(device=info.device, dtype=info.dtype).eval()
    if not info.is_gpu and os.environ.get("TRELLIS_LM_SKINNY", "1") != "0":
        use_skinny_linears(model)  # 2-3x faster batched decode steps on CPU (ml.cpu_linear)
    # A bf16 copy (+270 MB for the 135M model) prefills a 385-token grounded prompt in 0.33 s
    # on one thread vs 0.73 s in fp32; autocast instead re-casts every weight on each
    # 128-token chunk and was slower than fp32 (1.04 s). TRELLIS_LM_BF16_PREFILL=0: no copy.
    prefill_model = copy.deepcopy(model).to(torch.bfloat16) if bf16_prefill else None
    return ChatLM(model, tokenizer, version=manifest.version, info=info, prefill_model=prefill_model)
