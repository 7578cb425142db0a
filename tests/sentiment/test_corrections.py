"""Analyst corrections: saved from the document page or the API, the newest one wins, and the
export is an mlops dataset (role sentiment, the active model's label names) a job can train on."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from apps.audit.models import AuditEvent
from apps.mlops.models import Dataset, ModelVersion
from apps.mlops.services.datasets import dataset_rows
from apps.mlops.services.training import training_job_create
from apps.sentiment.models import Correction, Document, Entity
from apps.sentiment.services.corrections import correction_rows, correction_save, corrections_export
from tests.sentiment.conftest import T0
from tests.sentiment.fixtures_alerts import deliver_inline, score

__all__ = ["deliver_inline", "score"]

pytestmark = pytest.mark.django_db
TWO = "$AAPL beats estimates while $MSFT misses on cloud revenue"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def documents(score, watchlist) -> dict[str, Document]:
    score([(TWO, T0), ("$TSLA shares fall after a recall", T0), ("$AAPL schedules its annual meeting", T0)])
    return {d.text: d for d in Document.objects.all()}


def test_the_document_page_saves_a_correction_and_a_changed_mind_replaces_it(documents, make_user):
    analyst = make_user("analyst")
    client = Client()
    client.force_login(analyst)
    doc = documents["$TSLA shares fall after a recall"]
    assert client.post(f"/sentiment/documents/{doc.pk}/correct/", {"label": "neutral"}).status_code == 302
    correction = Correction.objects.get()
    assert (correction.label, correction.previous_label, correction.model_version) == (
        "neutral",
        "negative",
        "fake-keyword-1",
    )
    client.post(f"/sentiment/documents/{doc.pk}/correct/", {"label": "negative"})
    assert list(Correction.objects.values_list("label", flat=True)) == ["negative"]
    assert AuditEvent.objects.filter(action="sentiment_correction.save").count() == 2
    # an entity the document does not mention is refused
    bad = client.post(f"/sentiment/documents/{doc.pk}/correct/", {"label": "positive", "entity": "AAPL"})
    assert bad.status_code == 400


def test_an_entity_correction_exports_the_clause_about_that_entity(documents, make_user):
    analyst = make_user("analyst")
    doc = documents[TWO]
    correction_save(document=doc, label="positive", entity=Entity.objects.get(symbol="AAPL"), user=analyst)
    correction_save(document=doc, label="negative", entity=Entity.objects.get(symbol="MSFT"), user=analyst)
    rows = dict(correction_rows())
    # the bundled default's vocabulary (no version is active): bullish/bearish
    assert rows == {"$AAPL beats estimates": "bullish", "$MSFT misses on cloud revenue": "bearish"}


def test_export_makes_a_sentiment_dataset_a_job_can_train_on(documents, make_user):
    analyst, other = make_user("analyst"), make_user("analyst")
    tsla, meeting = documents["$TSLA shares fall after a recall"], documents["$AAPL schedules its annual meeting"]
    correction_save(document=tsla, label="positive", user=other)
    correction_save(document=tsla, label="negative", user=analyst)  # newer: wins
    correction_save(document=meeting, label="neutral", user=analyst)
    correction_save(document=documents[TWO], label="positive", entity=Entity.objects.get(symbol="AAPL"), user=analyst)
    ModelVersion.objects.create(
        role="sentiment",
        version="s-1",
        kind="fewshot-classifier",
        artifact_path="/x",
        status="active",
        labels=["negative", "neutral", "positive"],
    )

    dataset = corrections_export(user=analyst, name="analyst labels")

    assert (dataset.role, dataset.source, dataset.name, dataset.rows) == ("sentiment", "feedback", "analyst labels", 3)
    assert dict(dataset_rows(dataset)) == {
        "$TSLA shares fall after a recall": "negative",
        "$AAPL schedules its annual meeting": "neutral",
        "$AAPL beats estimates": "positive",
    }
    job = training_job_create(dataset=dataset, method="fewshot", params={}, user=analyst)  # labels match the active
    assert job.role == "sentiment"
    assert corrections_export(user=analyst).pk == dataset.pk  # the same corrections: the same dataset


def test_nothing_to_export_and_a_single_label_are_clear_errors(documents, make_user):
    analyst = make_user("analyst")
    with pytest.raises(ValidationError, match="no corrections"):
        corrections_export(user=analyst)
    correction_save(document=documents[TWO], label="positive", user=analyst)
    with pytest.raises(ValidationError, match="do not make a valid dataset"):
        corrections_export(user=analyst)
    assert not Dataset.objects.exists()


def test_corrections_api_and_page_export(documents, analyst_client, make_user):
    tsla = documents["$TSLA shares fall after a recall"]
    made = analyst_client.post("/api/sentiment/corrections/", {"document": tsla.pk, "label": "neutral"}, format="json")
    assert made.status_code == 201 and made.json()["previous_label"] == "negative"
    entity = analyst_client.post(
        "/api/sentiment/corrections/",
        {"document": documents[TWO].pk, "label": "positive", "entity": "aapl"},
        format="json",
    )
    assert entity.status_code == 201 and entity.json()["entity"] == "AAPL"
    unknown = analyst_client.post(
        "/api/sentiment/corrections/", {"document": 999999, "label": "neutral"}, format="json"
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "invalid"
    assert analyst_client.get("/api/sentiment/corrections/").json()["count"] == 2
    exported = analyst_client.post("/api/sentiment/corrections/export/", {"name": "api export"}, format="json")
    assert exported.status_code == 201
    assert exported.json()["label_counts"] == {"bullish": 1, "neutral": 1}

    page = Client()
    page.force_login(make_user("analyst"))
    response = page.post("/sentiment/corrections/export/", {"name": ""})
    assert response.status_code == 302 and response["Location"] == f"/models/datasets/{exported.json()['dataset']}/"
    assert "$TSLA shares fall after a recall" in page.get("/sentiment/corrections/").content.decode()
