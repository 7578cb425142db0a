"""Model label names -> the app's three labels, in one place.

The bundled zero-shot default and the financial-tweets data say ``bearish`` / ``neutral`` /
``bullish``; fine-tuned versions may say ``negative`` / ``neutral`` / ``positive`` (or the
short forms). Everything the app stores uses ``models.Label``; the value of a score is
``p(positive) - p(negative)``, in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping

from apps.sentiment.models import Label

ALIASES: dict[str, Label] = {
    "negative": Label.NEGATIVE,
    "bearish": Label.NEGATIVE,
    "neg": Label.NEGATIVE,
    "neutral": Label.NEUTRAL,
    "neu": Label.NEUTRAL,
    "positive": Label.POSITIVE,
    "bullish": Label.POSITIVE,
    "pos": Label.POSITIVE,
}
# Ties go to neutral, then positive (the rule of ml/sentiment/series.py, so that a score's
# label and the bucket it is counted in always agree).
TIE_ORDER = (Label.NEUTRAL, Label.POSITIVE, Label.NEGATIVE)


class UnknownLabel(ValueError):
    """A model label that is not one of the sentiment labels (a model of another role?)."""


def label_of(name: str) -> Label:
    """``"bullish"`` -> ``Label.POSITIVE``; raises UnknownLabel for any other vocabulary."""
    try:
        return ALIASES[str(name).strip().lower()]
    except KeyError as exc:
        known = ", ".join(sorted(ALIASES))
        raise UnknownLabel(f"model label {name!r} is not a sentiment label (expected one of {known})") from exc


def canonical_probabilities(probs: Mapping[str, float]) -> dict[str, float]:
    """Model probabilities keyed by ``Label`` values (aliases summed; missing labels 0)."""
    out = {label.value: 0.0 for label in Label}
    for name, p in probs.items():
        out[label_of(name).value] += float(p)
    return out


def score_value(probs: Mapping[str, float]) -> float:
    """``p(positive) - p(negative)`` of canonical probabilities, clipped to [-1, 1]."""
    value = probs.get(Label.POSITIVE.value, 0.0) - probs.get(Label.NEGATIVE.value, 0.0)
    return max(-1.0, min(1.0, value))


def best_label(probs: Mapping[str, float]) -> Label:
    """The most probable label of canonical probabilities (ties: neutral, then positive)."""
    return max(TIE_ORDER, key=lambda label: (probs.get(label.value, 0.0), -TIE_ORDER.index(label)))
