"""Explain a document's score: token attributions from the ML core, on the document's text.

The explanation comes from the version that gave the document its live score when that
version is registered and loads here (``apps.mlops.services.explain``), else from the
sentiment model serving now (the bundled default has no ModelVersion row), and the answer
says which. The explainer takes at most ``ml.explain.MAX_CHARS`` characters and
``MAX_WORDS`` words: a longer document is explained on its beginning, and the answer says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.mlops.models import ModelRole, ModelVersion
from apps.mlops.services.explain import VersionNotExplainable, VersionUnavailable, model_version_classifier
from apps.mlops.services.serving import model_get
from apps.sentiment.models import Document
from apps.sentiment.services.labels import UnknownLabel, label_of
from ml.explain import MAX_CHARS, MAX_WORDS, words_of


class NotExplainable(Exception):
    """No sentiment classifier can explain this document here (the message says why)."""


@dataclass(frozen=True)
class ExplainPlan:
    classifier: Any
    version: str
    scored_by: str | None
    text: str
    truncated: bool
    target: str | None  # in the classifier's own label names
    note: str


def explainable_text(text: str) -> tuple[str, bool]:
    """The longest start of ``text`` the explainer takes (whole words), and whether it was cut."""
    spans = words_of(text)
    end = len(text)
    if len(spans) > MAX_WORDS:
        end = spans[MAX_WORDS - 1][1]
    if end > MAX_CHARS:
        inside = [e for _, e in spans if e <= MAX_CHARS]
        end = inside[-1] if inside else MAX_CHARS
    return text[:end], end < len(text)


def _classifier_label(classifier: Any, target: str | None) -> str | None:
    if target is None:
        return None
    for name in getattr(classifier, "labels", []):
        try:
            if label_of(name).value == target:
                return name
        except UnknownLabel:
            continue
    raise NotExplainable(f"the model has no label for {target!r}")


def document_explain_plan(document: Document, *, target: str | None = None) -> ExplainPlan:
    """What to explain and with which classifier (sync: it may load a model from disk).

    Raises:
        NotExplainable: the model cannot be loaded or explained, or has no such label.
    """
    score = document.scores.filter(live=True).first() or document.scores.order_by("-scored_at").first()
    scored_by = score.model_version if score else None
    classifier, version, note = None, None, ""
    row = ModelVersion.objects.filter(role=ModelRole.SENTIMENT, version=scored_by).first() if scored_by else None
    if row is not None:
        try:
            classifier, version = model_version_classifier(version=row), row.version
        except (VersionNotExplainable, VersionUnavailable) as exc:
            note = f"{scored_by} cannot be explained here ({exc}); "
    if classifier is None:
        try:
            classifier = model_get(ModelRole.SENTIMENT)
        except Exception as exc:  # ModelUnavailable and load failures: nothing serves sentiment here
            raise NotExplainable(f"no sentiment model can be loaded here: {exc}") from exc
        version = getattr(classifier, "version", "") or "default"
        if scored_by and version != scored_by:
            note += f"explained with the model serving now ({version}); the score came from {scored_by}."
    text, truncated = explainable_text(document.text)
    if truncated:
        note = (note + " " if note else "") + f"Only the first {len(text)} characters are explained."
    return ExplainPlan(
        classifier, version, scored_by, text, truncated, _classifier_label(classifier, target), note.strip()
    )
