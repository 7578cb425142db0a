"""Batched scoring: each (document, model version) scored exactly once, all or nothing.

One batch is one transaction: lock up to ``batch_size`` documents nobody has scored
(``select_for_update(skip_locked=True)`` on PostgreSQL, so concurrent workers take disjoint
batches; SQLite runs every transaction IMMEDIATE, so writers queue instead), predict them in
one call, link their entities, score each entity, and write Score, Mention, EntityScore and
the SeriesBucket increments before committing. A worker killed anywhere in between leaves
nothing behind and its documents are pending again; unique constraints on (document,
version) are the last line of defence. After the commit ``signals.scores_committed`` tells
the alerting and the live feed.

Live scoring takes the documents with no live score yet and scores them with the active
version (``Score.live``: "as seen then"); buckets of basis ``live`` and of that version grow.
``documents_rescore(version)`` gives every live-scored document a score of another version
(``live=False``) and fills the buckets of basis ``<version>`` ("as scored now"), keeping the
live rows as they are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils.module_loading import import_string

from apps.sentiment.models import Document, EntityScore, Mention, Score, SeriesBucket
from apps.sentiment.services.labels import best_label, canonical_probabilities, score_value
from apps.sentiment.services.linking import linker_get
from apps.sentiment.services.series import ScorePoint, buckets_add
from apps.sentiment.signals import scores_committed

log = logging.getLogger(__name__)

SURFACE_MAX = Mention._meta.get_field("surface").max_length
ENTITY_METHOD = "clause"  # ml.sentiment.targets: the clause around each mention (see its bench)


class VersionUnavailable(Exception):
    """The version asked for is not a sentiment model this process can load."""


@dataclass
class BatchResult:
    version: str
    basis: list[str]
    document_ids: list[int] = field(default_factory=list)
    entity_ids: set[int] = field(default_factory=set)
    entity_scores: int = 0
    since: datetime | None = None
    until: datetime | None = None


# --- the model


def scoring_model() -> Any:
    """The active sentiment model (``model_get``), or the test double named by the test-only
    setting ``TRELLIS_SENTIMENT_MODEL_OVERRIDE`` (a dotted path to a factory)."""
    override = settings.TRELLIS_SENTIMENT_MODEL_OVERRIDE
    if override:
        return import_string(override)()
    from apps.mlops.services.serving import model_get

    return model_get("sentiment")


def model_version_name(model: Any) -> str:
    return str(getattr(model, "version", "") or "default")


def model_for_version(version: str) -> Any:
    """A loaded sentiment model of ``version``: the active one, or a registered version."""
    active = scoring_model()
    if model_version_name(active) == version:
        return active
    from apps.mlops.models import ModelRole, ModelVersion
    from apps.mlops.services.explain import VersionNotExplainable, model_version_classifier
    from apps.mlops.services.explain import VersionUnavailable as NotLoadable

    row = ModelVersion.objects.filter(role=ModelRole.SENTIMENT, version=version).first()
    if row is None:
        raise VersionUnavailable(f"no sentiment model version {version!r}")
    try:
        return model_version_classifier(version=row)
    except (VersionNotExplainable, NotLoadable) as exc:
        raise VersionUnavailable(str(exc)) from exc


def active_version_name() -> str:
    """The version live scoring uses now (read from the database; nothing is loaded)."""
    if settings.TRELLIS_SENTIMENT_MODEL_OVERRIDE:
        return model_version_name(scoring_model())
    from apps.mlops.models import ModelRole, ModelVersion

    row = ModelVersion.objects.filter(role=ModelRole.SENTIMENT, status=ModelVersion.Status.ACTIVE).first()
    return row.version if row else "default"


def rescore_check(version: str) -> int:
    """How many documents a rescoring with ``version`` would score; ValidationError when
    ``version`` is not a sentiment model version."""
    from apps.mlops.models import ModelRole, ModelVersion

    known = ModelVersion.objects.filter(role=ModelRole.SENTIMENT, version=version).exists()
    if not known and version != active_version_name():
        raise ValidationError(f"no sentiment model version {version!r} (see /api/mlops/versions/?role=sentiment)")
    return _pending_rescore(version).count()


def rescore_request(*, version: str, user: Any, request: Any = None) -> int:
    """Checks ``version`` (ValidationError), records who asked, queues the rescoring after
    commit; returns how many documents it will score."""
    from apps.audit.services import audit_record
    from apps.sentiment.services.background import enqueue

    with transaction.atomic():
        documents = rescore_check(version)
        audit_record(
            actor=user,
            action="sentiment.rescore",
            request=request,
            details={"version": version},
            summary=f"rescoring {documents} documents with {version}",
        )
        enqueue("documents_rescore_task", version)
    return documents


# --- one batch


def _batch_size(batch_size: int | None) -> int:
    return batch_size or settings.TRELLIS_SENTIMENT_SCORING_BATCH


def _pending_live() -> QuerySet[Document]:
    return Document.objects.filter(~Exists(Score.objects.filter(document=OuterRef("pk"), live=True)))


def _pending_rescore(version: str) -> QuerySet[Document]:
    return Document.objects.filter(Exists(Score.objects.filter(document=OuterRef("pk"), live=True))).filter(
        ~Exists(Score.objects.filter(document=OuterRef("pk"), model_version=version))
    )


def _lock(pending: QuerySet[Document], batch_size: int) -> list[Document]:
    return list(pending.order_by("id").select_for_update(skip_locked=True)[:batch_size])


def _predict(model: Any) -> Callable[[list[str]], list[dict[str, float]]]:
    def predict(inputs: list[str]) -> list[dict[str, float]]:
        return [canonical_probabilities(p.probs) for p in model.predict(inputs, batch_size=len(inputs) or 1)]

    return predict


def _entity_probabilities(
    docs: Sequence[Document],
    mentions: list[list[Any]],
    doc_probs: list[dict[str, float]],
    predict: Callable[[list[str]], list[dict[str, float]]],
) -> list[dict[str, dict[str, float]]]:
    """symbol -> probabilities per document: a one-entity document reuses its own score; the
    clauses of documents naming several entities are predicted together in one call."""
    from ml.sentiment.targets import entity_scores_many

    out: list[dict[str, dict[str, float]]] = []
    several = [i for i, ms in enumerate(mentions) if len({m.symbol for m in ms}) > 1]
    for i, ms in enumerate(mentions):
        out.append({m.symbol: doc_probs[i] for m in ms})
    if several:
        scored = entity_scores_many(
            [docs[i].text for i in several], [mentions[i] for i in several], predict, ENTITY_METHOD
        )
        for i, per_entity in zip(several, scored, strict=True):
            out[i] = {symbol: canonical_probabilities(p) for symbol, p in per_entity.items()}
    return out


def _write(
    docs: list[Document],
    model: Any,
    version: str,
    *,
    live: bool,
    mentions: list[list[Any]],
    entity_ids: dict[str, int],
    new_mentions: bool,
) -> BatchResult:
    predictions = model.predict([d.text for d in docs], batch_size=len(docs))
    doc_probs = [canonical_probabilities(p.probs) for p in predictions]
    result = BatchResult(version=version, basis=[SeriesBucket.LIVE, version] if live else [version])
    Score.objects.bulk_create(
        [
            Score(
                document=doc,
                model_version=version,
                label=best_label(probs),
                probabilities=probs,
                value=score_value(probs),
                abstained=bool(getattr(p, "abstained", False)),
                live=live,
            )
            for doc, p, probs in zip(docs, predictions, doc_probs, strict=True)
        ]
    )
    linked = [[m for m in ms if m.symbol in entity_ids] for ms in mentions]
    if new_mentions:
        Mention.objects.bulk_create(
            [
                Mention(
                    document=doc,
                    entity_id=entity_ids[m.symbol],
                    start=m.start,
                    end=m.end,
                    surface=m.surface[:SURFACE_MAX],
                    how=m.how,
                )
                for doc, ms in zip(docs, linked, strict=True)
                for m in ms
            ],
            ignore_conflicts=True,
        )  # the linker may report one span twice (name and alias)
    per_doc = _entity_probabilities(docs, linked, doc_probs, _predict(model))
    rows, points = [], []
    for doc, per_entity in zip(docs, per_doc, strict=True):
        for symbol, probs in per_entity.items():
            label, value = best_label(probs), score_value(probs)
            rows.append(
                EntityScore(
                    document=doc,
                    entity_id=entity_ids[symbol],
                    model_version=version,
                    label=label,
                    probabilities=probs,
                    value=value,
                    live=live,
                    published_at=doc.published_at,
                )
            )
            points.append(ScorePoint(entity_ids[symbol], doc.published_at, value, label))
    EntityScore.objects.bulk_create(rows)
    buckets_add(points, result.basis)
    result.document_ids = [d.pk for d in docs]
    result.entity_ids = {p.entity_id for p in points}
    result.entity_scores = len(rows)
    if points:
        result.since = min(p.published_at for p in points)
        result.until = max(p.published_at for p in points)
    return result


def _announce(result: BatchResult) -> None:
    """After the commit: one ``scores_committed`` per basis written."""

    def send() -> None:
        for basis in result.basis:
            # The scores are committed whatever a receiver does: its failure is logged, and
            # neither undoes them nor keeps the other receivers from running.
            answers = scores_committed.send_robust(
                sender=Score,
                entity_ids=sorted(result.entity_ids),
                basis=basis,
                since=result.since,
                until=result.until,
                document_ids=result.document_ids,
                model_version=result.version,
            )
            for receiver, answer in answers:
                if isinstance(answer, Exception):
                    log.error("scores_committed receiver %r failed: %r", receiver, answer, exc_info=answer)

    transaction.on_commit(send)


def documents_score_batch(*, batch_size: int | None = None, model: Any = None) -> BatchResult | None:
    """Scores one batch of documents that have no live score yet; None when there are none."""
    model = model or scoring_model()
    version = model_version_name(model)
    linker, entity_ids = linker_get()  # outside the transaction: spaCy may load the first time
    with transaction.atomic():
        docs = _lock(_pending_live(), _batch_size(batch_size))
        if not docs:
            return None
        mentions = linker.link_many([d.text for d in docs]) if linker else [[] for _ in docs]
        result = _write(docs, model, version, live=True, mentions=mentions, entity_ids=entity_ids, new_mentions=True)
        _announce(result)
    return result


def documents_rescore_batch(*, version: str, model: Any, batch_size: int | None = None) -> BatchResult | None:
    """Scores one batch of live-scored documents with ``model`` (of ``version``), reusing their mentions."""
    from ml.sentiment.entities import Mention as Linked

    with transaction.atomic():
        docs = _lock(_pending_rescore(version), _batch_size(batch_size))
        if not docs:
            return None
        rows = Mention.objects.filter(document__in=docs).select_related("entity").order_by("document_id", "start")
        by_doc: dict[int, list[Any]] = {d.pk: [] for d in docs}
        entity_ids: dict[str, int] = {}
        for row in rows:
            by_doc[row.document_id].append(Linked(row.entity.symbol, row.start, row.end, row.surface, row.how))
            entity_ids[row.entity.symbol] = row.entity_id
        result = _write(
            docs,
            model,
            version,
            live=False,
            mentions=[by_doc[d.pk] for d in docs],
            entity_ids=entity_ids,
            new_mentions=False,
        )
        _announce(result)
    return result


# --- loops (what the tasks call)


def documents_score_pending(
    *, batch_size: int | None = None, max_batches: int | None = None, time_budget_s: float | None = None
) -> dict[str, Any]:
    """Scores batches until nothing is pending, ``max_batches`` ran or ``time_budget_s`` passed."""
    return _loop(
        lambda model: documents_score_batch(batch_size=batch_size, model=model),
        scoring_model(),
        max_batches,
        time_budget_s,
    )


def documents_rescore(
    *, version: str, batch_size: int | None = None, max_batches: int | None = None, time_budget_s: float | None = None
) -> dict[str, Any]:
    """Scores the live-scored history with ``version`` (raises VersionUnavailable)."""
    model = model_for_version(version)
    return _loop(
        lambda m: documents_rescore_batch(version=version, model=m, batch_size=batch_size),
        model,
        max_batches,
        time_budget_s,
    )


def _loop(
    run: Callable[[Any], BatchResult | None], model: Any, max_batches: int | None, time_budget_s: float | None
) -> dict[str, Any]:
    started = time.monotonic()
    batches = documents = entity_scores = 0
    finished = False
    while max_batches is None or batches < max_batches:
        if time_budget_s is not None and time.monotonic() - started > time_budget_s:
            break
        result = run(model)
        if result is None:
            finished = True
            break
        batches += 1
        documents += len(result.document_ids)
        entity_scores += result.entity_scores
    return {
        "version": model_version_name(model),
        "batches": batches,
        "documents": documents,
        "entity_scores": entity_scores,
        "finished": finished,
    }


def pending_count() -> int:
    return _pending_live().count()
