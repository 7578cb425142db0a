"""Analyst corrections: the right label for a document, or for one entity in it.

Corrections are training data for the next sentiment model. ``corrections_export`` turns
them into an mlops ``Dataset`` (role sentiment, ``text,label``) that a training job can use:

- a document-level correction gives the document's text;
- an entity-level one gives the input the model scores for that entity (the clause(s)
  around its mentions, ``ml.sentiment.targets.entity_inputs``; the whole text when the
  document names one entity), so the model learns from what it is judged on.

Labels are written in the active model's vocabulary (``bearish``/``bullish`` for the bundled
default and the tweets data, ``negative``/``positive`` for others), so a job on the export
does not trip the "labels differ from the active model's" check. When several analysts
corrected the same thing, the newest correction wins.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.audit.services import audit_record
from apps.mlops.models import Dataset, ModelRole, ModelVersion
from apps.mlops.services.datasets import DatasetRejected, dataset_from_rows
from apps.sentiment.models import Correction, Document, Entity, EntityScore, Label
from apps.sentiment.services.labels import UnknownLabel, label_of


def _current(document: Document, entity: Entity | None) -> tuple[str, str]:
    """(label, model version) the document (or entity in it) has now: live score first."""
    if entity is None:
        score = document.scores.order_by("-live", "-scored_at").first()
    else:
        score = EntityScore.objects.filter(document=document, entity=entity).order_by("-live", "-id").first()
    return (score.label, score.model_version) if score else ("", "")


def correction_save(
    *, document: Document, label: str, user: Any, entity: Entity | None = None, request: Any = None
) -> Correction:
    """Records (or changes) ``user``'s label for the document or one entity in it.

    Raises:
        ValidationError: an unknown label, or an entity the document does not mention.
    """
    if label not in Label.values:
        raise ValidationError(f"label must be one of {', '.join(Label.values)}, not {label!r}")
    if entity is not None and not document.mentions.filter(entity=entity).exists():
        raise ValidationError(f"the document does not mention {entity.symbol}")
    previous, version = _current(document, entity)
    with transaction.atomic():
        correction, created = Correction.objects.update_or_create(
            document=document,
            entity=entity,
            created_by=user,
            defaults={"label": label, "previous_label": previous, "model_version": version},
        )
        if not created:  # a changed mind counts as the newest correction
            Correction.objects.filter(pk=correction.pk).update(created_at=timezone.now())
        audit_record(
            actor=user,
            action="sentiment_correction.save",
            target=correction,
            request=request,
            summary=f"labelled document {document.pk}"
            + (f" for {entity.symbol}" if entity else "")
            + f" {label} (model said {previous or 'nothing'})",
            details={
                "document": document.pk,
                "entity": entity.symbol if entity else None,
                "label": label,
                "previous": previous,
                "model_version": version,
            },
        )
    return correction


def correction_list() -> QuerySet[Correction]:
    return Correction.objects.select_related("document", "entity", "created_by")


def model_vocabulary() -> dict[str, str]:
    """``Label`` value -> the active sentiment model's name for it."""
    active = ModelVersion.objects.filter(role=ModelRole.SENTIMENT, status=ModelVersion.Status.ACTIVE).first()
    if active is not None and active.labels:
        names = list(active.labels)
    else:
        from ml.defaults import SENTIMENT_LABELS

        names = list(SENTIMENT_LABELS)
    out = {}
    for name in names:
        try:
            out.setdefault(label_of(name).value, name)
        except UnknownLabel:
            continue  # an out-of-scope label of an abstaining model
    return {label: out.get(label, label) for label in Label.values}


def _entity_text(document: Document, entity: Entity) -> str:
    from ml.sentiment.targets import entity_inputs

    mentions = [
        SimpleNamespace(symbol=m.entity.symbol, start=m.start, end=m.end)
        for m in document.mentions.select_related("entity").order_by("start")
    ]
    pieces = entity_inputs(document.text, mentions, "clause").get(entity.symbol)
    return " ".join(pieces) if pieces else document.text


def correction_rows() -> list[tuple[str, str]]:
    """``(text, label)`` training rows, newest correction per (document, entity), in the
    active model's label names; one row per distinct text."""
    vocabulary = model_vocabulary()
    newest: dict[tuple[int, int | None], Correction] = {}
    for c in correction_list().order_by("created_at", "id"):
        newest[(c.document_id, c.entity_id)] = c
    rows: dict[str, str] = {}
    for correction in newest.values():
        document = correction.document
        text = document.text if correction.entity is None else _entity_text(document, correction.entity)
        rows[text.strip()] = vocabulary[correction.label]
    return [(text, label) for text, label in rows.items() if text]


def corrections_export(*, user: Any, name: str = "", request: Any = None) -> Dataset:
    """An mlops Dataset (role sentiment) of every correction; the same corrections export to
    the same Dataset.

    Raises:
        ValidationError: no corrections yet, or the rows fail the dataset's validation
            (e.g. a single label: nothing to learn to tell apart).
    """
    rows = correction_rows()
    if not rows:
        raise ValidationError("there are no corrections to export yet")
    name = name or f"Sentiment corrections {timezone.now():%Y-%m-%d %H:%M}"
    try:
        dataset = dataset_from_rows(rows=rows, name=name, role=ModelRole.SENTIMENT, user=user)
    except DatasetRejected as exc:
        raise ValidationError(
            ["the corrections do not make a valid dataset yet:", *exc.report.get("errors", [])]
        ) from exc
    audit_record(
        actor=user,
        action="sentiment_correction.export",
        target=dataset,
        request=request,
        summary=f"exported {len(rows)} corrections as dataset {dataset.pk}",
        details={"rows": len(rows), "dataset": dataset.pk},
    )
    return dataset
