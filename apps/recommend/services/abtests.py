"""A/B tests of two blends: deterministic assignment, per-variant metrics, stopping.

A user (or anonymous session) lands in the variant picked by a hash of the test id and
their key, so they see the same variant on every request and in every process, with no
assignment table. Metrics per variant: impressions, clicks, purchases of a shown item by the
user it was shown to after it was shown; CTR and conversion (purchases / impressions) with
Wilson score intervals (95 %).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from apps.recommend.models import ABTest, Event, EventKind, Impression, RecommenderConfig
from apps.recommend.services.blends import default_config, weights_clean

Z_95 = 1.959964  # two-sided 95 % normal quantile


def variant_for(test: ABTest, key: str) -> str:
    """The variant ``key`` sees in ``test``: the same for the same key, evenly spread."""
    digest = hashlib.sha256(f"{test.pk}:{key}".encode()).digest()
    names = test.variant_names()
    return names[int.from_bytes(digest[:8], "big") % len(names)]


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 0) with no trials."""
    if trials <= 0:
        return 0.0, 0.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def abtest_create(*, name: str, variants: list[dict[str, Any]], user: Any) -> ABTest:
    if len(variants) != 2:
        raise ValidationError("An A/B test has exactly two variants.")
    clean = []
    for variant in variants:
        label = str(variant.get("name") or "").strip()
        if not label or len(label) > 40:
            raise ValidationError("Each variant needs a name of 1-40 characters.")
        diversity = float(variant.get("diversity") or 0.0)
        if not 0.0 <= diversity <= 1.0:  # also refuses NaN
            raise ValidationError("diversity is between 0 and 1")
        clean.append({"name": label, "weights": weights_clean(variant.get("weights") or {}), "diversity": diversity})
    if clean[0]["name"] == clean[1]["name"]:
        raise ValidationError("The two variants need different names.")
    try:
        with transaction.atomic():
            test = ABTest.objects.create(name=name.strip()[:100] or "A/B test", variants=clean,
                                         created_by=user if getattr(user, "pk", None) else None)
    except IntegrityError as exc:
        raise ValidationError("Another A/B test is running; stop it first.") from exc
    serving_cache.reset()
    return test


def abtest_running() -> ABTest | None:
    return ABTest.objects.filter(status=ABTest.Status.RUNNING).first()


SERVING_CACHE_S = 2.0  # a started or stopped test, a new default blend reach every process within this


class _ServingCache:
    """The running test and the default blend, read once per ``SERVING_CACHE_S`` per process
    (two queries less per request); this process drops it at once when it changes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[ABTest | None, RecommenderConfig] | None = None
        self._stamp = 0.0

    def get(self) -> tuple[ABTest | None, RecommenderConfig]:
        now = time.monotonic()
        with self._lock:
            if self._value is None or now - self._stamp > SERVING_CACHE_S:
                self._value, self._stamp = (abtest_running(), default_config()), now
            return self._value

    def reset(self) -> None:
        with self._lock:
            self._value = None


serving_cache = _ServingCache()


def serving_setup() -> tuple[ABTest | None, RecommenderConfig]:
    """(the running A/B test or None, the default blend configuration), cached briefly."""
    return serving_cache.get()


@transaction.atomic
def abtest_stop(*, test: ABTest, winner: str = "", make_default: bool = False) -> ABTest:
    """Stops ``test``; with ``make_default`` the winner's blend becomes the default."""
    test = ABTest.objects.select_for_update().get(pk=test.pk)
    if test.status != ABTest.Status.RUNNING:
        raise ValidationError("This test is already stopped.")
    if winner and winner not in test.variant_names():
        raise ValidationError(f"winner must be one of {', '.join(test.variant_names())}")
    if make_default and not winner:
        raise ValidationError("Name the winner to make it the default.")
    test.status, test.winner, test.stopped_at = ABTest.Status.STOPPED, winner, timezone.now()
    test.save(update_fields=["status", "winner", "stopped_at"])
    if make_default:
        chosen = next(v for v in test.variants if v["name"] == winner)
        RecommenderConfig.objects.update_or_create(
            name=RecommenderConfig.DEFAULT_NAME,
            defaults={"weights": chosen["weights"], "diversity": chosen.get("diversity", 0.0)})
    serving_cache.reset()
    return test


def abtest_results(test: ABTest) -> list[dict[str, Any]]:
    """Per variant: impressions, clicks, purchases, users, CTR and conversion with intervals."""
    bought = Event.objects.filter(kind=EventKind.PURCHASE, user_key=OuterRef("user_key"), item=OuterRef("item"),
                                  ts__gte=OuterRef("created_at"))
    rows = (
        Impression.objects.filter(ab_test=test)
        .annotate(bought=Exists(bought))
        .values("variant")
        .annotate(impressions=Count("pk"), clicks=Count("pk", filter=Q(clicked_at__isnull=False)),
                  purchases=Count("pk", filter=Q(bought=True)), users=Count("user_key", distinct=True))
    )
    by_name = {row["variant"]: row for row in rows}
    out = []
    for name in test.variant_names():
        row = by_name.get(name, {"impressions": 0, "clicks": 0, "purchases": 0, "users": 0})
        shown = row["impressions"]
        out.append({
            "name": name, "impressions": shown, "clicks": row["clicks"], "purchases": row["purchases"],
            "users": row["users"],
            "ctr": row["clicks"] / shown if shown else 0.0, "ctr_ci": wilson_interval(row["clicks"], shown),
            "conversion": row["purchases"] / shown if shown else 0.0,
            "conversion_ci": wilson_interval(row["purchases"], shown),
        })
    return out
