"""Streaming mechanics of the chat LM: stats, cancel criterion, streamer, stop strings.

Split from ``ml.generate`` so each stays small; ``ChatLM.stream`` composes them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import AsyncTextIteratorStreamer, PreTrainedTokenizerBase, StoppingCriteria


@dataclass
class GenerationStats:
    """What one ``stream`` call did; pass an instance in to have it filled.

    Attributes:
        prompt_tokens: tokens of the rendered prompt.
        tokens: tokens generated so far (updated live by the worker; a stop or cancel
            costs at most one token more).
        queued_s: seconds spent waiting at the gate.
        first_piece_s: seconds from the call to the first yielded text (None if none).
        total_s: seconds from the call to the end of the stream.
        finish_reason: ``eos``, ``length``, ``stop``, ``cancelled`` or ``error``.
    """

    prompt_tokens: int = 0
    tokens: int = 0
    queued_s: float = 0.0
    first_piece_s: float | None = None
    total_s: float = 0.0
    finish_reason: str = ""

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of generation time (queueing excluded)."""
        busy = self.total_s - self.queued_s
        return self.tokens / busy if busy > 0 else 0.0


class StopWhenSet(StoppingCriteria):
    """Stops generation once ``event`` is set; counts generated tokens into ``stats``.

    Called by ``generate`` after every new token, so a set event costs at most one more
    forward pass.
    """

    def __init__(self, event: threading.Event, prompt_len: int, stats: GenerationStats) -> None:
        self.event = event
        self.prompt_len = prompt_len
        self.stats = stats

    @property
    def generated(self) -> int:
        return self.stats.tokens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        self.stats.tokens = input_ids.shape[1] - self.prompt_len  # live: readable mid-stream
        flag = self.event.is_set()
        done = torch.full((input_ids.shape[0],), flag, dtype=torch.bool, device=input_ids.device)
        return cast(torch.BoolTensor, done)


class LoopSafeStreamer(AsyncTextIteratorStreamer):
    """``AsyncTextIteratorStreamer`` that tolerates its event loop closing mid-generation."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, cancel: threading.Event) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)  # type: ignore[arg-type]
        self._cancel = cancel

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        try:
            super().on_finalized_text(text, stream_end)
        except RuntimeError:  # loop closed: nobody can read the text any more, so stop
            self._cancel.set()


def stop_index(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest stop string in ``text``, or None."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that could still grow into a stop string."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best
