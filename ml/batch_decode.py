"""Continuous batching for the chat LM: one decode loop shared by every active stream.

Each ``ChatLM`` has one ``DecodeLoop``. Prompts that arrive together are prefilled
together (left-padded, up to two ``prefill_chunk``s of tokens); a longer prompt is
prefilled alone, one chunk per lane job. Each first token is sampled from the prefill
logits, and the KV cache joins the batch (``ml.kv_batch``). Every decode step then advances all
rows in one forward pass; a row leaves between steps at end of turn, at a stop string, at
``max_new_tokens`` or when its consumer cancels. Measured on 2 CPU threads with the
default 135M model: left-padded batches decode 27.5 / 65.3 / 102.8 aggregate tokens/s at
1 / 4 / 8 rows, so serving streams together is what multiplies throughput.

Every prefill chunk and every step is its own job on the compute lane, and a step queues
the next one behind whatever arrived meanwhile, so an embed or classify request waits for
at most one step (tens of ms) instead of a whole reply. All batch state is touched only on
the lane thread; the only cross-thread signal is a sequence's ``cancelled`` event. Results
leave through each sequence's ``sink``, a thread-safe callable (``ChatLM.stream`` hands
pieces to its event loop with ``call_soon_threadsafe``).

An error in a step fails the rows of that step (their cache is no longer trustworthy);
an error while prefilling or sampling fails only that sequence. The loop keeps serving.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

from ml import devices
from ml.compute_lane import ComputeLane, default_lane
from ml.kv_batch import BatchKV, prefill, prefill_group
from ml.lm_sampling import SamplingParams, new_generator, sample_next
from ml.lm_sequence import Finished, SequenceState, Sink
from ml.lm_stream import GenerationStats, TextAssembler

__all__ = ["DecodeLoop", "Finished", "SamplingParams", "SequenceState"]


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


# Prompt tokens per prefill job. ~2-3 ms a token on 2 CPU threads with the 135M model, so
# a 128-token chunk holds the other streams for ~0.3 s at most; a GPU prefills 2048 tokens
# in milliseconds. TRELLIS_LM_PREFILL_CHUNK overrides both.
CPU_PREFILL_CHUNK = 128
# A bf16 prefill copy on CPU (see DecodeLoop) runs small chunks poorly: a 385-token prompt
# took 0.61 s in 128-token chunks and 0.44 s in one 512-token pass (fp32 in 128s: 0.73 s),
# so it takes 512 at a time, holding the other streams for up to ~0.5 s per new prompt.
CPU_BF16_PREFILL_CHUNK = 512
GPU_PREFILL_CHUNK = 2048
ADMIT_GAP_S = 0.002  # see DecodeLoop._admit


class DecodeLoop:
    """The shared decode loop of one causal LM.

    Args:
        model: the causal LM, on its device, in eval mode.
        tokenizer: its tokenizer (``decode`` is used on the lane thread).
        info: device profile (its autocast, if any, wraps every decode step).
        prefill_model: the model prompts are prefilled with; ``model`` by default. On a CPU
            with bf16 matrix units it is a bf16 copy of ``model`` (``ml.generate``): prompts
            are matrix-sized and prefill ~2.5x faster in bf16, while one-row decode steps
            are faster in fp32. The prefilled keys/values are cast to ``model``'s dtype when
            they join the batch.
        lane: the compute lane; the process-wide ``default_lane()`` when None.
        prefill_chunk: prompt tokens per prefill job (see CPU_PREFILL_CHUNK).
        eos_ids: token ids that end a reply; the model's and tokenizer's eos by default.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: object,
        *,
        info: devices.DeviceInfo,
        prefill_model: PreTrainedModel | None = None,
        lane: ComputeLane | None = None,
        prefill_chunk: int | None = None,
        eos_ids: Sequence[int] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.prefill_model = prefill_model if prefill_model is not None else model
        if info.is_gpu:
            default_chunk = GPU_PREFILL_CHUNK
        elif self.prefill_model.dtype == torch.bfloat16 and model.dtype != torch.bfloat16:
            default_chunk = CPU_BF16_PREFILL_CHUNK
        else:
            default_chunk = CPU_PREFILL_CHUNK
        self._lane = lane
        self.prefill_chunk = prefill_chunk or _env_int("TRELLIS_LM_PREFILL_CHUNK", default_chunk)
        self.eos_ids = frozenset(eos_ids if eos_ids is not None else _eos_ids(model, tokenizer))
        self._kv = BatchKV(model.device, model.dtype)
        self._waiting: deque[SequenceState] = deque()  # submitted, not yet prefilling
        self._waiting_lock = threading.Condition()
        self._last_arrival = 0.0  # time.monotonic() of the newest submit
        self._rows: list[SequenceState] = []  # lane thread only
        self._step_queued = False  # lane thread only
        # Counters (written on the lane thread, read anywhere).
        self.steps = 0
        self.prefill_jobs = 0
        self.peak_rows = 0

    @property
    def lane(self) -> ComputeLane:
        return self._lane if self._lane is not None else default_lane()

    @property
    def rows(self) -> int:
        """Sequences decoding in the batch now."""
        return len(self._rows)

    # -- entry (any thread) ------------------------------------------------------------
    def submit(
        self,
        prompt: list[int],
        params: SamplingParams,
        *,
        sink: Sink,
        stats: GenerationStats | None = None,
        release: Callable[[], None] = lambda: None,
    ) -> SequenceState:
        """Starts a sequence: its prefill is queued on the lane, then it joins the batch.

        Args:
            prompt: prompt token ids (non-empty).
            params: its sampling parameters.
            sink: receives text pieces (``str``) and finally one ``Finished``; called on
                the lane thread, so it must only hand them over (thread-safe, quick).
            stats: filled live; a fresh one if None.
            release: called exactly once when the sequence leaves (frees its gate slot).

        Returns:
            The sequence; ``cancel()`` it to stop early, ``done`` tells when it has left.
        """
        if not prompt:
            raise ValueError("the prompt is empty")
        seq = SequenceState(
            prompt=list(prompt),
            params=params,
            stats=stats if stats is not None else GenerationStats(),
            sink=sink,
            release=release,
            text=TextAssembler(self.tokenizer, params.stop),
            generator=new_generator(params, self.model.device),
        )
        with self._waiting_lock:
            self._waiting.append(seq)
            self._last_arrival = time.monotonic()
            self._waiting_lock.notify()
        try:
            self.lane.run(self._admit)
        except BaseException:  # lane shut down: the caller releases its slot itself
            with self._waiting_lock:
                if seq in self._waiting:
                    self._waiting.remove(seq)
            raise
        return seq

    # -- lane jobs ---------------------------------------------------------------------
    def _take_group(self) -> tuple[list[SequenceState], list[SequenceState]]:
        """Waiting sequences to prefill now, and cancelled ones to drop.

        Short prompts that waited together are prefilled together while the padded group
        stays within two prefill chunks; a prompt longer than a chunk goes alone, chunk
        by chunk.
        """
        group: list[SequenceState] = []
        dropped: list[SequenceState] = []
        budget = 2 * self.prefill_chunk
        with self._waiting_lock:
            while self._waiting:
                seq = self._waiting[0]
                if seq.cancelled.is_set():
                    dropped.append(self._waiting.popleft())
                    continue
                long_prompt = len(seq.prompt) > self.prefill_chunk
                if group and (long_prompt or max(len(s.prompt) for s in (*group, seq)) * (len(group) + 1) > budget):
                    break
                group.append(self._waiting.popleft())
                if long_prompt:
                    break
        return group, dropped

    def _admit(self) -> None:
        """Starts the prefill of whatever is waiting (one job may take several sequences).

        On an idle loop and lane it first gives a burst of streams (one event loop submits
        them back to back, well within ADMIT_GAP_S of each other) the chance to arrive, so
        that they are prefilled as one group: 4 streams then see their first token after
        one group pass instead of after a lone pass plus a group pass.
        """
        with self._waiting_lock:
            while self._waiting and not self._rows and self.lane.waiting == 0:
                quiet = self._last_arrival + ADMIT_GAP_S - time.monotonic()
                if quiet <= 0:
                    break
                self._waiting_lock.wait(quiet)
        group, dropped = self._take_group()
        self._finish_all([(seq, Finished("cancelled")) for seq in dropped])
        if len(group) == 1 and len(group[0].prompt) > self.prefill_chunk:
            self._prefill(group[0])
        elif group:
            self._prefill_group(group)

    def _prefill_group(self, group: list[SequenceState]) -> None:
        """Prefills short prompts in one padded pass, samples their first tokens, joins them."""
        try:
            self.prefill_jobs += 1
            pad_id = next(iter(self.eos_ids), 0)
            with devices.inference_context(self.info):
                cache, mask, logits = prefill_group(self.prefill_model, [s.prompt for s in group], pad_id)
            tokens = sample_next(logits, [s.params for s in group], [s.generator for s in group])
        except Exception as exc:  # noqa: BLE001 - fails these sequences, the loop goes on
            self._finish_all([(seq, Finished("error", exc)) for seq in group])
            return
        ended: list[tuple[SequenceState, Finished]] = []
        joining: list[int] = []
        for i, (seq, token) in enumerate(zip(group, tokens, strict=True)):
            seq.prefilled = seq.length = len(seq.prompt)
            try:
                if isinstance(token, BaseException):
                    raise token
                reason = self._accept(seq, token)
            except Exception as exc:  # noqa: BLE001 - this sequence only
                ended.append((seq, Finished("error", exc)))
                continue
            if reason is None:
                joining.append(i)
            else:
                ended.append((seq, Finished(reason)))
        if joining:
            self._join(cache, mask, [group[i] for i in joining], joining, len(group))
        self._finish_all(ended)

    def _join(
        self, cache: DynamicCache, mask: torch.Tensor | None, seqs: list[SequenceState], rows: list[int], size: int
    ) -> None:
        """Merges the ``rows`` (of ``size``) of a prefilled cache into the batch as ``seqs``."""
        before = self._kv.rows
        try:
            self._kv.add(cache, mask)
            if len(rows) != size:
                self._kv.keep(list(range(before)) + [before + i for i in rows])
        except Exception as exc:  # noqa: BLE001 - out of memory, typically
            if self._kv.rows == before:  # the batch is as it was: only the joiners fail
                self._finish_all([(seq, Finished("error", exc)) for seq in seqs])
                return
            everyone, self._rows = self._rows + seqs, []
            self._kv.clear()
            self._finish_all([(seq, Finished("error", exc)) for seq in everyone])
            return
        self._rows.extend(seqs)
        self.peak_rows = max(self.peak_rows, len(self._rows))
        self._queue_step()

    def _prefill(self, seq: SequenceState) -> None:
        """Feeds the next chunk of a long prompt; after the last, samples and joins the batch."""
        if seq.cancelled.is_set():
            self._finish(seq, Finished("cancelled"))
            return
        try:
            self.prefill_jobs += 1
            if seq.cache is None:
                seq.cache = BatchKV.new_cache()
            chunk = seq.prompt[seq.prefilled : seq.prefilled + self.prefill_chunk]
            with devices.inference_context(self.info):
                logits = prefill(self.prefill_model, seq.cache, chunk, seq.prefilled)
            seq.prefilled += len(chunk)
            if seq.prefilled < len(seq.prompt):
                self.lane.run(self._prefill, seq)  # behind whatever queued meanwhile
                return
            seq.length = len(seq.prompt)
            token = sample_next(logits.unsqueeze(0), [seq.params], [seq.generator])[0]
            if isinstance(token, BaseException):
                raise token
            reason = self._accept(seq, token)
        except Exception as exc:  # noqa: BLE001 - fails this sequence, the loop goes on
            seq.cache = None
            self._finish(seq, Finished("error", exc))
            return
        cache, seq.cache = seq.cache, None
        if reason is not None:
            self._finish(seq, Finished(reason))
        else:
            self._join(cache, None, [seq], [0], 1)

    def _queue_step(self) -> None:
        if not self._step_queued:
            self._step_queued = True
            self.lane.run(self._step)

    def _step(self) -> None:
        """One forward pass for every row, then sampling, text and departures.

        Departing rows leave the batch state before their consumers hear of it, so a
        stream that has ended is never still counted in ``rows``.
        """
        self._step_queued = False
        rows = self._rows
        gone = [(seq, Finished("cancelled")) for seq in rows if seq.cancelled.is_set()]
        if gone:
            self._keep([i for i, seq in enumerate(rows) if not seq.cancelled.is_set()])
            self._finish_all(gone)
            rows = self._rows
        if not rows:
            return
        try:
            with devices.inference_context(self.info):
                logits = self._kv.step(self.model, [s.last for s in rows], [s.length for s in rows])
        except Exception as exc:  # noqa: BLE001 - these rows' cache is suspect: fail them all
            self._rows = []
            self._kv.clear()
            self._finish_all([(seq, Finished("error", exc)) for seq in rows])
            return
        self.steps += 1
        keep: list[int] = []
        ended: list[tuple[SequenceState, Finished]] = []
        tokens = sample_next(logits, [s.params for s in rows], [s.generator for s in rows])
        for i, (seq, token) in enumerate(zip(rows, tokens, strict=True)):
            seq.length += 1
            try:
                if isinstance(token, BaseException):
                    raise token
                reason = self._accept(seq, token)
            except Exception as exc:  # noqa: BLE001 - a sampling or decode error: this row only
                ended.append((seq, Finished("error", exc)))
                continue
            if reason is None:
                keep.append(i)
            else:
                ended.append((seq, Finished(reason)))
        if ended:
            self._keep(keep)
        if self._rows:
            self._queue_step()
        self._finish_all(ended)

    def _keep(self, indices: list[int]) -> None:
        self._kv.keep(indices)
        self._rows = [self._rows[i] for i in indices]

    def _finish_all(self, ended: list[tuple[SequenceState, Finished]]) -> None:
        for seq, finished in ended:
            self._finish(seq, finished)

    # -- per-sequence bookkeeping (lane thread) ----------------------------------------
    def _accept(self, seq: SequenceState, token: int) -> str | None:
        """Records a sampled token and emits its text; returns why the sequence ends."""
        seq.generated += 1
        seq.stats.tokens = seq.generated
        seq.last = token
        if token in self.eos_ids:
            reason = "eos"
        else:
            self._emit(seq, seq.text.push(token))
            if seq.text.stopped:
                return "stop"
            if seq.generated < seq.params.max_new_tokens:
                return None
            reason = "length"
        self._emit(seq, seq.text.finish())
        return "stop" if seq.text.stopped else reason

    def _emit(self, seq: SequenceState, piece: str) -> None:
        if not piece or seq.cancelled.is_set():
            return
        try:
            seq.sink(piece)
        except Exception:  # noqa: BLE001 - the consumer's loop is gone: nobody will read
            seq.cancel()

    def _finish(self, seq: SequenceState, finished: Finished) -> None:
        """Releases the slot, resolves ``done`` and sends the last event, in that order."""
        try:
            seq.release()
        finally:
            if not seq.done.done():
                seq.done.set_result(finished.reason)
            try:
                seq.sink(finished)
            except Exception:  # noqa: BLE001, S110 - the consumer's loop is gone; nothing to tell
                pass

    def stats(self) -> dict[str, int]:
        """Counters since start: decode steps, prefill jobs, rows now and at the peak."""
        return {"decode_steps": self.steps, "prefill_jobs": self.prefill_jobs, "batch_rows": self.rows,
                "peak_batch_rows": self.peak_rows}


def _eos_ids(model: PreTrainedModel, tokenizer: object) -> set[int]:
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    configured = getattr(config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list | tuple):
        ids.update(int(i) for i in configured)
    tokenizer_eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(tokenizer_eos, int):
        ids.add(tokenizer_eos)
    return ids
