"""Token choice for the chat LM's decode loop: per-sequence parameters and sampling.

Every sequence in a continuous batch keeps its own parameters and its own
``torch.Generator``, so a seeded reply samples the same tokens whatever else is decoding
beside it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["SamplingParams", "new_generator", "sample_next"]


@dataclass(frozen=True)
class SamplingParams:
    """How one sequence picks its tokens and when it ends.

    Attributes:
        max_new_tokens: upper bound on generated tokens (>= 1).
        temperature: 0 for greedy decoding, else the softmax temperature.
        top_p: nucleus mass kept when sampling, in (0, 1].
        top_k: most candidates kept when sampling (0 = no limit); 50 is the transformers
            default that ``generate`` applied before this loop existed.
        seed: seeds this sequence's own generator (reproducible sampling whatever else
            is in the batch); None draws a random seed.
        stop: strings that end the reply; neither they nor anything after is emitted.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 50
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if any(not isinstance(s, str) for s in self.stop):
            raise ValueError("stop must be a list of strings")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def new_generator(params: SamplingParams, device: torch.device | str) -> torch.Generator | None:
    """The sequence's own generator (None when greedy), seeded from ``params.seed`` or at random."""
    if params.greedy:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
    return generator


def sample_next(
    logits: torch.Tensor, params: Sequence[SamplingParams], generators: Sequence[torch.Generator | None]
) -> list[int | BaseException]:
    """Picks each row's next token with its own parameters and generator.

    Greedy rows take the argmax; sampling rows apply temperature, top-k and top-p (in the
    order transformers' ``generate`` does) and draw with their own ``torch.Generator``.

    Returns:
        Per row, the token id, or the exception that row's sampling raised.
    """
    picked: list[int | BaseException] = list(logits.argmax(dim=-1).tolist())
    for row, (p, generator) in enumerate(zip(params, generators, strict=True)):
        if p.greedy:
            continue
        try:
            scores = logits[row].float() / p.temperature
            if 0 < p.top_k < scores.shape[-1]:
                kth = torch.topk(scores, p.top_k).values[-1]
                scores = scores.masked_fill(scores < kth, -math.inf)
            if p.top_p < 1:
                ordered, order = torch.sort(scores, descending=False)
                cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
                drop = cumulative <= (1 - p.top_p)
                drop[-1] = False  # keep at least the most likely token
                scores = scores.masked_fill(drop.scatter(0, order, drop), -math.inf)
            probs = scores.softmax(dim=-1)
            picked[row] = int(torch.multinomial(probs, 1, generator=generator).item())
        except Exception as exc:  # noqa: BLE001 - fails this row only
            picked[row] = exc
    return picked
