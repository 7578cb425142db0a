"""Per-request limits of the inference API, read from settings (environment, see README)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ServingLimits:
    """Bounds every request is validated against.

    Attributes:
        max_texts: texts per embeddings / classify / entities request.
        max_text_chars: characters per text (the encoders read at most 256 tokens, ~1,000
            characters, of each; the rest only costs tokenising).
        max_tokens: upper bound of ``max_tokens`` for chat completions.
        default_max_tokens: tokens generated when a request does not say.
        max_messages: chat turns per request.
        max_stop: stop sequences per request (OpenAI's limit).
        max_stop_chars: characters per stop sequence.
    """

    max_texts: int
    max_text_chars: int
    max_tokens: int
    default_max_tokens: int
    max_messages: int = 256
    max_stop: int = 4
    max_stop_chars: int = 64


def serving_limits() -> ServingLimits:
    max_tokens = max(1, settings.TRELLIS_SERVING_MAX_TOKENS)
    return ServingLimits(
        max_texts=max(1, settings.TRELLIS_SERVING_MAX_TEXTS),
        max_text_chars=max(1, settings.TRELLIS_SERVING_MAX_TEXT_CHARS),
        max_tokens=max_tokens,
        default_max_tokens=min(256, max_tokens),
    )
