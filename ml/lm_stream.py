"""Per-sequence text mechanics of the chat LM: stats, incremental detokenising, stop strings.

The decode loop (``ml.batch_decode``) feeds each sequence's new token ids to a
``TextAssembler``, which turns them into text pieces the way transformers' ``TextStreamer``
does (whole words only, so a multi-byte character split over tokens is never emitted
half-decoded) and cuts the reply at the first stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class GenerationStats:
    """What one ``stream`` call did; pass an instance in to have it filled.

    Attributes:
        prompt_tokens: tokens of the rendered prompt.
        tokens: tokens generated so far (updated live by the decode loop; a cancel costs
            at most one decode step more).
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


def _is_cjk(cp: int) -> bool:
    """CJK ideographs are whole words on their own (same blocks as ``TextStreamer``)."""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class TextAssembler:
    """Turns one sequence's generated token ids into text pieces, honouring stop strings.

    Decoding follows ``TextStreamer``: the token ids since the last newline are decoded as a
    whole each time and only text up to the last space (or a newline, or a CJK character)
    is released, so byte-level BPE pieces of one character (``\\ufffd`` while incomplete)
    and words that a later token could still change are held back. The pieces joined are
    exactly ``tokenizer.decode(all_ids, skip_special_tokens=True)``, cut at the first stop
    string, which is never emitted, nor is anything after it.

    Args:
        tokenizer: the model's tokenizer (``decode`` only; safe to share across threads).
        stops: stop strings (empty ones are ignored).
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self._ids: list[int] = []
        self._printed = 0  # characters of decode(self._ids) already released
        self._pending = ""  # released by the decoder, held back for a possible stop string
        self.stopped = False  # a stop string was found; push/finish return nothing after

    def push(self, token_id: int) -> str:
        """Adds one generated token; returns the text that is now final ('' if none)."""
        if self.stopped:
            return ""
        self._ids.append(token_id)
        text = self._decode()
        if text.endswith("\n"):
            piece = text[self._printed :]
            self._ids, self._printed = [], 0
        elif text and _is_cjk(ord(text[-1])):
            piece = text[self._printed :]
            self._printed = len(text)
        else:
            piece = text[self._printed : text.rfind(" ") + 1]
            self._printed += len(piece)
        return self._release(piece, final=False)

    def finish(self) -> str:
        """Releases whatever is still held (end of generation)."""
        if self.stopped:
            return ""
        piece = self._decode()[self._printed :] if self._ids else ""
        self._ids, self._printed = [], 0
        return self._release(piece, final=True)

    def _decode(self) -> str:
        return str(self.tokenizer.decode(self._ids, skip_special_tokens=True))

    def _release(self, piece: str, *, final: bool) -> str:
        if not self.stops:
            return piece
        pending = self._pending + piece
        cut = stop_index(pending, self.stops)
        if cut is not None:
            self.stopped, self._pending = True, ""
            return pending[:cut]
        keep = 0 if final else held_back(pending, self.stops)
        self._pending = pending[len(pending) - keep :] if keep else ""
        return pending[: len(pending) - keep]
