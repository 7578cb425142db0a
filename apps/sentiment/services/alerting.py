"""Alert rules evaluated as scores arrive, and the live feed of newly scored documents.

``scores_committed`` (sent by the scoring service after each scoring transaction commits,
apps/sentiment/signals.py) names the entities whose live series changed and the time range
of the documents scored. For each enabled rule on one of those entities (directly, or
through a watchlist the entity is on), the rule's condition (``ml.sentiment.alerts``) is
evaluated on the entity's live ``SeriesBucket`` rows of the rule's width, at every bucket the
range touched, in time order: a replayed day of tweets scored in one batch fires where the
day crossed the threshold, not only at its end.

Time is the data's time. A rule evaluated at a bucket is evaluated as of the bucket's end,
or of the newest scored document inside it, and an alert's ``fired_at`` is that instant
(never later than the wall clock). For live data that is the wall clock give or take the
scoring delay; for a replay of 2015 it is 2015, so a replay fires as the live stream would
have, and the cooldown counts from the previous alert's ``fired_at`` in the same time.
An evaluation as of an instant not after the previous alert's never fires (a signal handled
twice, or a cooldown of 0, cannot fire twice for one instant).

Every (rule, entity) pair is first screened without locks (a few queries for the whole
signal, the conditions on numpy series): most fire nothing. A pair that would fire is
evaluated again under a lock: two workers evaluating the same rule (two scoring batches
touching one entity) are serialised by a lock on the rule's row (SQLite: every transaction
takes the write lock), and the cooldown is read under that lock: never two alerts for one
rule and entity within its cooldown. An alert keeps the documents of its window that mention the entity (the
most extreme first, at most ``TRELLIS_SENTIMENT_ALERT_DOCUMENTS``), and its deliveries are
queued after its transaction commits.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from apps.sentiment.models import Alert, AlertRule, Entity, EntityScore, SeriesBucket
from apps.sentiment.services.delivery import alert_deliveries_create
from ml.sentiment.alerts import (
    AlertCondition,
    ChangeCondition,
    LevelCondition,
    Trigger,
    VolumeSpikeCondition,
    should_fire,
)
from ml.sentiment.series import Bucket, Series, bucket_start

log = logging.getLogger(__name__)

# Buckets one signal evaluates per (rule, entity), the newest: a backfill of a year of hourly
# data is judged on its last three weeks instead of 8,760 evaluations inside one scoring signal.
MAX_EVALUATIONS = 500


@dataclass(frozen=True)
class Evaluation:
    rule: AlertRule
    entity: Entity
    fired: list[Alert]


# --- rules -> conditions (one place; forms and serializers validate through it)


def rule_condition(rule: AlertRule) -> AlertCondition:
    """The ``ml.sentiment.alerts`` condition of a rule.

    A change rule's threshold is signed: +0.3 fires when the mean rises by at least 0.3,
    -0.3 when it falls by at least 0.3.

    Raises:
        ValidationError: a parameter out of its bounds (the message says which).
    """
    c = AlertRule.Condition
    try:
        if rule.condition in (c.LEVEL_ABOVE, c.LEVEL_BELOW):
            direction = "above" if rule.condition == c.LEVEL_ABOVE else "below"
            return LevelCondition(direction, rule.threshold, window=rule.window, min_volume=rule.min_volume)
        if rule.condition == c.CHANGE:
            if rule.threshold == 0:
                raise ValueError("threshold of a change rule must not be 0: +x fires on a rise, -x on a fall")
            direction = "up" if rule.threshold > 0 else "down"
            return ChangeCondition(direction, abs(rule.threshold), window=rule.window, min_volume=rule.min_volume)
        if rule.condition == c.VOLUME_SPIKE:
            return VolumeSpikeCondition(z=rule.threshold, baseline=rule.baseline, min_volume=rule.min_volume)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    raise ValidationError(f"unknown condition {rule.condition!r}")


def lookback_buckets(rule: AlertRule) -> int:
    """Buckets before the evaluated one that the condition reads."""
    c = AlertRule.Condition
    if rule.condition == c.CHANGE:
        return 2 * rule.window - 1
    if rule.condition == c.VOLUME_SPIKE:
        return rule.baseline
    return rule.window - 1


def rules_for_entities(entity_ids: Iterable[int]) -> dict[int, list[AlertRule]]:
    """entity id -> the enabled rules that watch it (directly or through a watchlist)."""
    wanted = set(entity_ids)
    out: dict[int, list[AlertRule]] = {e: [] for e in wanted}
    rules = (
        AlertRule.objects.filter(enabled=True)
        .filter(Q(entity_id__in=wanted) | Q(watchlist__entities__in=wanted))
        .select_related("watchlist")
        .distinct()
    )
    members: dict[int, set[int]] = {}
    for rule in rules:
        if rule.entity_id is not None:
            targets = {rule.entity_id}
        else:
            if rule.watchlist_id not in members:
                members[rule.watchlist_id] = set(rule.watchlist.entities.values_list("pk", flat=True))
            targets = members[rule.watchlist_id]
        for entity_id in targets & wanted:
            out[entity_id].append(rule)
    return out


# --- evaluation


def _series(entity: Entity, rule: AlertRule, lo: datetime, hi: datetime) -> Series:
    rows = SeriesBucket.objects.filter(
        entity=entity, basis=SeriesBucket.LIVE, width_s=rule.width_s, start__gte=lo, start__lt=hi
    )
    buckets = [Bucket(r.start, r.width_s, r.n, r.sum_value, r.n_positive, r.n_negative, r.n_neutral) for r in rows]
    return Series.from_buckets(buckets, rule.width_s, start=lo, end=hi, name=entity.symbol)


def _instants(rule: AlertRule, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """(bucket start, evaluation time) of every bucket in [start, end], oldest first."""
    width = timedelta(seconds=rule.width_s)
    first, last = bucket_start(start, rule.width_s), bucket_start(end, rule.width_s)
    count = int((last - first) / width) + 1
    skip = max(0, count - MAX_EVALUATIONS)
    out = []
    for i in range(skip, count):
        b = first + i * width
        out.append((b, min(b + width, end) if b == last else b + width))
    return out


def _triggering_documents(entity: Entity, trigger: Trigger, rule: AlertRule) -> list[int]:
    scores = EntityScore.objects.filter(
        entity=entity, live=True, published_at__gte=trigger.recent_start, published_at__lt=trigger.end
    )
    c = AlertRule.Condition
    rising = rule.condition == c.LEVEL_ABOVE or (rule.condition == c.CHANGE and rule.threshold > 0)
    falling = rule.condition == c.LEVEL_BELOW or (rule.condition == c.CHANGE and rule.threshold < 0)
    order = ("-value",) if rising else ("value",) if falling else ("-published_at", "-id")
    limit = settings.TRELLIS_SENTIMENT_ALERT_DOCUMENTS
    return list(scores.order_by(*order).values_list("document_id", flat=True)[:limit])


def _alert_create(rule: AlertRule, entity: Entity, trigger: Trigger, at: datetime) -> Alert:
    alert = Alert.objects.create(
        rule=rule,
        entity=entity,
        value=trigger.value,
        threshold=rule.threshold,
        message=trigger.message[:500],
        window_start=trigger.recent_start,
        window_end=trigger.end,
    )
    Alert.objects.filter(pk=alert.pk).update(fired_at=at)  # auto_now_add stamped the wall clock
    alert.fired_at = at
    alert.documents.set(_triggering_documents(entity, trigger, rule))
    alert_deliveries_create(alert)
    return alert


def rule_evaluate(rule: AlertRule, entity: Entity, start: datetime, end: datetime) -> list[Alert]:
    """Evaluates one rule for one entity at every bucket in [start, end]; returns the new alerts."""
    condition = rule_condition(rule)
    instants = _instants(rule, start, end)
    if not instants:
        return []
    width = timedelta(seconds=rule.width_s)
    lo = instants[0][0] - lookback_buckets(rule) * width
    hi = instants[-1][0] + width
    fired: list[Alert] = []
    with transaction.atomic():
        # The rule's row lock makes "read the last alert, then maybe create one" atomic
        # across workers; the rule may have been disabled or deleted meanwhile.
        locked = AlertRule.objects.select_for_update().filter(pk=rule.pk, enabled=True).first()
        if locked is None:
            return []
        last = (
            Alert.objects.filter(rule=rule, entity=entity)
            .order_by("-fired_at")
            .values_list("fired_at", flat=True)
            .first()
        )
        series = _series(entity, rule, lo, hi)
        now = timezone.now()
        for bucket, at in instants:
            at = min(at, now)
            if last is not None and (at <= last or not should_fire(last, at, rule.cooldown_s)):
                continue
            trigger = condition.evaluate(series, bucket)
            if trigger is None:
                continue
            fired.append(_alert_create(rule, entity, trigger, at))
            last = at
    for alert in fired:
        log.info("alert %s: rule %s (%s) fired for %s: %s", alert.pk, rule.pk, rule.name, entity.symbol, alert.message)
    return fired


def _fires_at(
    rule: AlertRule,
    condition: AlertCondition,
    series: Series,
    instants: list[tuple[datetime, datetime]],
    last: datetime | None,
    now: datetime,
) -> bool:
    """Whether the rule would fire at one of the instants (the cooldown applied as it would be)."""
    for bucket, at in instants:
        at = min(at, now)
        if last is not None and (at <= last or not should_fire(last, at, rule.cooldown_s)):
            continue
        if condition.evaluate(series, bucket) is not None:
            return True
    return False


def _screen(pairs: list[tuple[AlertRule, Entity]], start: datetime, end: datetime) -> list[tuple[AlertRule, Entity]]:
    """The (rule, entity) pairs that would fire, found without locks in three queries per
    bucket width: most evaluations fire nothing, and only the candidates take the rule's lock
    (``rule_evaluate``, which decides again under it)."""
    last_fired = {
        (row["rule"], row["entity"]): row["last"]
        for row in Alert.objects.filter(rule__in={r.pk for r, _ in pairs}, entity__in={e.pk for _, e in pairs})
        .values("rule", "entity")
        .annotate(last=Max("fired_at"))
    }
    by_width: dict[int, list[tuple[AlertRule, Entity]]] = defaultdict(list)
    for rule, entity in pairs:
        by_width[rule.width_s].append((rule, entity))
    now, out = timezone.now(), []
    for width, group in by_width.items():
        plans = []
        for rule, entity in group:
            try:
                condition = rule_condition(rule)
            except ValidationError as exc:  # a rule stored before a bound changed: skip it, loudly
                log.error("alert rule %s cannot be evaluated: %s", rule.pk, " ".join(exc.messages))
                continue
            instants = _instants(rule, start, end)
            lo = instants[0][0] - lookback_buckets(rule) * timedelta(seconds=width)
            plans.append((rule, entity, condition, instants, lo, instants[-1][0] + timedelta(seconds=width)))
        if not plans:
            continue
        lo, hi = min(p[4] for p in plans), max(p[5] for p in plans)
        stored: dict[int, list[Bucket]] = defaultdict(list)
        rows = SeriesBucket.objects.filter(
            entity__in={p[1].pk for p in plans}, basis=SeriesBucket.LIVE, width_s=width, start__gte=lo, start__lt=hi
        ).values_list("entity_id", "start", "n", "sum_value", "n_positive", "n_negative", "n_neutral")
        for entity_id, bucket_start_, n, total, pos, neg, neu in rows:  # tuples: no model instances
            stored[entity_id].append(Bucket(bucket_start_, width, n, total, pos, neg, neu))
        for rule, entity, condition, instants, first, last_start in plans:
            series = Series.from_buckets(stored[entity.pk], width, start=first, end=last_start, name=entity.symbol)
            if _fires_at(rule, condition, series, instants, last_fired.get((rule.pk, entity.pk)), now):
                out.append((rule, entity))
    return out


def alerts_evaluate(*, entity_ids: Iterable[int], start: datetime, end: datetime) -> list[Evaluation]:
    """Evaluates every enabled rule on these entities over [start, end] (data time); returns
    the evaluations that fired."""
    if end < start:
        start, end = end, start
    by_entity = rules_for_entities(entity_ids)
    entities = Entity.objects.in_bulk([e for e, rules in by_entity.items() if rules])
    pairs = [(rule, entities[e]) for e, rules in by_entity.items() if e in entities for rule in rules]
    out = []
    for rule, entity in _screen(pairs, start, end):
        fired = rule_evaluate(rule, entity, start, end)
        if fired:
            out.append(Evaluation(rule, entity, fired))
    return out


def scores_committed_receiver(
    sender: Any,
    *,
    entity_ids: Iterable[int] = (),
    basis: str = SeriesBucket.LIVE,
    since: datetime | None = None,
    until: datetime | None = None,
    document_ids: Iterable[int] = (),
    **kwargs: Any,
) -> None:
    """``scores_committed``: evaluate the rules (live basis only) and feed the dashboards.

    Connected in ``apps.sentiment.apps``. Never raises: the scores are committed already, and
    a failure here must not look like a failed scoring batch; it is logged with its traceback.
    """
    from apps.sentiment.services.feed_live import live_documents_publish

    if basis != SeriesBucket.LIVE:
        return
    live_documents_publish(document_ids=list(document_ids), start=since, end=until)  # the news, then the alerts
    entity_ids = list(entity_ids)
    if entity_ids and since is not None and until is not None:
        try:
            alerts_evaluate(entity_ids=entity_ids, start=since, end=until)
        except Exception:
            log.exception("alert evaluation failed for entities %s", entity_ids[:20])
