"""One sequence of the chat LM's decode loop: its state and its last event.

Split from ``ml.batch_decode`` so each module stays small.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from ml.lm_sampling import SamplingParams
from ml.lm_stream import GenerationStats, TextAssembler

__all__ = ["Finished", "SequenceState", "Sink"]


@dataclass(frozen=True)
class Finished:
    """The last event of a sequence: why it ended, and the error if it failed."""

    reason: str  # eos | length | stop | cancelled | error
    error: BaseException | None = None


Sink = Callable[[str | Finished], None]


@dataclass(eq=False)
class SequenceState:
    """One stream inside the loop. Created by ``DecodeLoop.submit``.

    Attributes:
        prompt: prompt token ids.
        params: sampling parameters.
        stats: filled live (``tokens``).
        cancelled: set by the consumer; the sequence leaves before the next step.
        done: resolved with the finish reason once the sequence has left the loop and
            released its slot.
    """

    prompt: list[int]
    params: SamplingParams
    stats: GenerationStats
    sink: Sink
    release: Callable[[], None]
    text: TextAssembler
    generator: torch.Generator | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: Future[str] = field(default_factory=Future)
    cache: DynamicCache | None = None
    prefilled: int = 0  # prompt tokens in the cache
    length: int = 0  # real tokens in the cache (the position of ``last``)
    last: int = -1  # newest sampled token, fed at the next step
    generated: int = 0

    def cancel(self) -> None:
        """Asks the loop to drop this sequence (within one step); safe from any thread."""
        self.cancelled.set()
