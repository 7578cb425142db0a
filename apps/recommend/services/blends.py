"""Blend configurations: which recommenders, with what weights (one place for the names)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from apps.recommend.models import RecommenderConfig
from ml.recommend.served import MEMBER_NAMES, SERVED_WEIGHTS

# The served blend's members and default weights are defined once, in ml.recommend.served,
# where bench/eval_recommend.py evaluates them too.
MEMBERS = MEMBER_NAMES
DEFAULT_WEIGHTS: dict[str, float] = dict(SERVED_WEIGHTS)
MAX_WEIGHT = 100.0


def weights_clean(weights: dict[str, Any]) -> dict[str, float]:
    if not isinstance(weights, dict) or not weights:
        raise ValidationError(f"weights: an object naming some of {', '.join(MEMBERS)}")
    clean: dict[str, float] = {}
    for name, value in weights.items():
        if name not in MEMBERS:
            raise ValidationError(f"weights: unknown recommender {name!r} (known: {', '.join(MEMBERS)})")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"weights: {name} must be a number") from exc
        if not 0.0 <= number <= MAX_WEIGHT:
            raise ValidationError(f"weights: {name} must be between 0 and {MAX_WEIGHT:g}")
        clean[name] = number
    if not any(clean.values()):
        raise ValidationError("weights: at least one must be above 0")
    return clean


def default_config() -> RecommenderConfig:
    config, _ = RecommenderConfig.objects.get_or_create(
        name=RecommenderConfig.DEFAULT_NAME, defaults={"weights": DEFAULT_WEIGHTS})
    return config
