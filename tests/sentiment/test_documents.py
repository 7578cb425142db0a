"""Documents: normalisation, the content hash, deduplication, limits, dates, language."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.sentiment.models import Document, Score, Source
from apps.sentiment.services.documents import (
    IngestItem,
    content_hash,
    documents_ingest,
    language_detect,
    text_normalise,
)
from tests.sentiment.conftest import T0

pytestmark = pytest.mark.django_db


def test_normalisation_folds_unicode_forms_spaces_and_invisible_characters():
    raw = "\u00a0 Ａｐｐｌｅ\u200b  beats\tthe\nstreet\x00 ﬁnally  "

    assert text_normalise(raw) == "Apple beats the street finally"


def test_hash_ignores_case_and_spacing_but_not_words():
    spaced = content_hash(text_normalise("Apple  beats\nestimates"))
    assert spaced == content_hash(text_normalise("APPLE BEATS ESTIMATES"))
    assert content_hash("apple beats estimates") != content_hash("apple misses estimates")


def test_the_same_text_twice_is_one_document(push_source):
    first = documents_ingest(push_source, [IngestItem(text="Apple beats estimates", published_at=T0)])
    again = documents_ingest(push_source, [IngestItem(text="Apple beats estimates", published_at=T0)])

    assert (first.created, first.duplicates) == (1, 0)
    assert (again.created, again.duplicates) == (0, 1)
    assert Document.objects.count() == 1
    assert Source.objects.get(pk=push_source.pk).documents_ingested == 1


def test_spacing_case_and_width_variants_are_duplicates_within_one_batch(push_source):
    report = documents_ingest(
        push_source,
        [
            IngestItem(text="Tesla recalls 2,000 cars", published_at=T0),
            IngestItem(text="  TESLA   recalls 2,000 cars ", published_at=T0),
            IngestItem(text="Ｔｅｓｌａ recalls 2,000 cars", published_at=T0),
        ],
    )

    assert (report.created, report.duplicates) == (1, 2)
    assert Document.objects.get().text == "Tesla recalls 2,000 cars"  # stored as first written


def test_the_same_text_from_another_source_is_the_same_document(push_source):
    other = Source.objects.create(name="Other wire", kind=Source.Kind.PUSH)
    documents_ingest(push_source, [IngestItem(text="Microsoft to buy a games studio", published_at=T0)])

    report = documents_ingest(other, [IngestItem(text="microsoft to buy a games studio", published_at=T0)])

    assert report.duplicates == 1
    assert Document.objects.get().source == push_source


def test_an_external_id_seen_before_is_a_duplicate_whatever_its_text(push_source):
    documents_ingest(push_source, [IngestItem(text="First version", external_id="wire-1", published_at=T0)])

    report = documents_ingest(
        push_source, [IngestItem(text="Corrected version", external_id="wire-1", published_at=T0)]
    )

    assert (report.created, report.duplicates) == (0, 1)
    assert list(Document.objects.values_list("text", flat=True)) == ["First version"]


def test_bad_items_are_rejected_one_by_one_and_the_rest_stored(push_source, settings):
    settings.TRELLIS_SENTIMENT_MAX_DOCUMENT_CHARS = 50
    items = [
        IngestItem(text="fine headline", published_at=T0),
        IngestItem(text="x" * 51, external_id="too-long", published_at=T0),
        IngestItem(text=" \n\t ", published_at=T0),
        IngestItem(text="bad link", url="javascript:alert(1)", published_at=T0),
        IngestItem(text="from the future", published_at=timezone.now() + timedelta(days=2)),
        IngestItem(text="odd language", language="english!", published_at=T0),
        IngestItem(text="another fine headline", published_at=T0),
    ]

    report = documents_ingest(push_source, items)

    assert report.created == 2
    errors = {r["index"]: r["error"] for r in report.rejected}
    assert errors[1] == "text: 51 characters; the limit is 50"
    assert report.rejected[0]["external_id"] == "too-long"
    assert errors[2].startswith("text: empty")
    assert errors[3].startswith("url:")
    assert errors[4].startswith("published_at:") and "future" in errors[4]
    assert errors[5].startswith("language:")
    assert set(Document.objects.values_list("text", flat=True)) == {"fine headline", "another fine headline"}


def test_published_at_defaults_to_arrival_with_a_flag_and_naive_times_are_utc(push_source):
    naive = datetime(2025, 1, 2, 3, 4, 5)  # noqa: DTZ001 - a sender without a zone
    report = documents_ingest(
        push_source, [IngestItem(text="no date given"), IngestItem(text="naive date", published_at=naive)]
    )

    undated, dated = Document.objects.filter(pk__in=report.document_ids).order_by("id")
    assert undated.meta == {"published_at_defaulted": True}
    assert abs((undated.published_at - undated.ingested_at).total_seconds()) < 5
    assert dated.published_at.isoformat() == "2025-01-02T03:04:05+00:00"
    assert dated.meta == {}


def test_language_is_detected_when_not_given_and_kept_when_given(push_source):
    report = documents_ingest(
        push_source,
        [
            IngestItem(text="Die Aktie von Siemens steigt nach starken Quartalszahlen deutlich", published_at=T0),
            IngestItem(text="Apple shares rise after strong quarterly results", published_at=T0),
            IngestItem(text="Texte sans langue détectée", language="FR", published_at=T0),
        ],
    )

    languages = list(
        Document.objects.filter(pk__in=report.document_ids).order_by("id").values_list("language", flat=True)
    )
    assert languages == ["de", "en", "fr"]
    assert language_detect("$AAPL $MSFT") in ("", "en")  # tickers alone: unsure or English, never a guess


def test_ingest_queues_scoring_of_the_new_documents(push_source, watchlist, fake_model):
    report = documents_ingest(push_source, [IngestItem(text="Apple beats estimates", published_at=T0)])

    score = Score.objects.get(document_id=report.document_ids[0])
    assert (score.label, score.live, score.model_version) == ("positive", True, "fake-keyword-1")
    assert fake_model.calls == [1]
