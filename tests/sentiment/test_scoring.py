"""Batched scoring with the keyword model: scores, mentions, entity scores, buckets, the
signal, rescoring; and one run with the real bundled models (MiniLM zero-shot + spaCy)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Sum

from apps.sentiment.models import Document, Entity, EntityScore, Mention, Score, SeriesBucket
from apps.sentiment.services import scoring
from apps.sentiment.services.scoring import documents_rescore, documents_score_pending
from apps.sentiment.signals import scores_committed
from tests.sentiment.conftest import T0
from tests.sentiment.fakes import KeywordSentiment

pytestmark = pytest.mark.django_db
LIVE = SeriesBucket.LIVE
HEADLINES = [
    ("Apple beats estimates as iPhone sales jump", T0 + timedelta(minutes=5)),
    ("Microsoft misses on cloud revenue, while Tesla beats delivery forecasts", T0 + timedelta(minutes=20)),
    ("$TSLA plunges after recall", T0 + timedelta(hours=1, minutes=10)),
    ("Markets are flat ahead of the Fed meeting", T0 + timedelta(hours=2)),
]


def _entity_labels() -> dict[tuple[str, str], str]:
    return {
        (es.document.text[:9], es.entity.symbol): es.label
        for es in EntityScore.objects.select_related("document", "entity")
    }


def test_each_entity_gets_its_own_score_and_single_entity_documents_reuse_theirs(push_source, watchlist, ingest):
    ingest(push_source, HEADLINES)

    assert Score.objects.filter(live=True).count() == 4
    assert _entity_labels() == {
        ("Apple bea", "AAPL"): "positive",
        ("Microsoft", "MSFT"): "negative",  # its clause: "Microsoft misses on cloud revenue"
        ("Microsoft", "TSLA"): "positive",  # its clause: "Tesla beats delivery forecasts"
        ("$TSLA plu", "TSLA"): "negative",
    }
    mixed = Document.objects.get(text__startswith="Microsoft")
    assert mixed.scores.get().label == "neutral"  # one up, one down: the document as a whole is neither
    assert {(m.entity.symbol, m.surface, m.how) for m in Mention.objects.filter(document=mixed)} == {
        ("MSFT", "Microsoft", "name"),
        ("TSLA", "Tesla", "name"),
    }
    apple = EntityScore.objects.get(entity__symbol="AAPL")
    assert apple.value == pytest.approx(0.7) and apple.live and apple.published_at == HEADLINES[0][1]


def test_buckets_count_every_entity_score_in_each_width_for_live_and_the_version(push_source, watchlist, ingest):
    ingest(push_source, HEADLINES)

    for basis in (LIVE, "fake-keyword-1"):
        for width in (900, 3600, 86400):
            total = SeriesBucket.objects.filter(basis=basis, width_s=width).aggregate(n=Sum("n"))["n"]
            assert total == EntityScore.objects.count() == 4
    tsla_hours = {
        b.start: (b.n, round(b.sum_value, 3), b.n_positive, b.n_negative)
        for b in SeriesBucket.objects.filter(entity=watchlist["TSLA"], basis=LIVE, width_s=3600)
    }
    assert tsla_hours == {T0: (1, 0.7, 1, 0), T0 + timedelta(hours=1): (1, -0.7, 0, 1)}
    quarter = SeriesBucket.objects.get(entity=watchlist["MSFT"], basis=LIVE, width_s=900)
    assert quarter.start == T0 + timedelta(minutes=15) and quarter.n_negative == 1
    day = SeriesBucket.objects.get(entity=watchlist["TSLA"], basis=LIVE, width_s=86400)
    assert (day.start, day.n, day.mean) == (T0.replace(hour=0), 2, pytest.approx(0.0))


def test_documents_are_predicted_in_batches_of_the_setting(push_source, watchlist, ingest, fake_model, settings):
    settings.TRELLIS_SENTIMENT_SCORING_BATCH = 2
    rows = [(f"Apple headline number {i} rises", T0 + timedelta(minutes=i)) for i in range(5)]
    ingest(push_source, rows, score=False)

    result = documents_score_pending()

    assert (result["documents"], result["batches"], result["finished"]) == (5, 3, True)
    assert fake_model.calls == [2, 2, 1]  # one-entity documents: no second call for clauses
    assert documents_score_pending()["documents"] == 0  # nothing is scored twice
    assert Score.objects.count() == 5


def test_a_batch_that_fails_midway_leaves_nothing_and_is_scored_by_the_next_run(
    push_source, watchlist, ingest, monkeypatch
):
    ingest(push_source, HEADLINES, score=False)

    def broken(*args, **kwargs):
        raise RuntimeError("worker died while writing the buckets")

    monkeypatch.setattr(scoring, "buckets_add", broken)
    with pytest.raises(RuntimeError):
        documents_score_pending()
    assert (
        Score.objects.count(),
        Mention.objects.count(),
        EntityScore.objects.count(),
        SeriesBucket.objects.count(),
    ) == (0, 0, 0, 0)

    monkeypatch.undo()
    assert documents_score_pending()["documents"] == 4
    assert Score.objects.count() == 4 and EntityScore.objects.count() == 4


def test_the_signal_follows_the_commit_once_per_basis(
    push_source, watchlist, ingest, django_capture_on_commit_callbacks
):
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    scores_committed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            ingest(push_source, HEADLINES[:2])
        assert received == []  # nothing before the commit
        for callback in callbacks:
            callback()
    finally:
        scores_committed.disconnect(receiver)

    assert [r["basis"] for r in received] == [LIVE, "fake-keyword-1"]
    live = received[0]
    assert live["entity_ids"] == sorted(e.pk for s, e in watchlist.items() if s in ("AAPL", "MSFT", "TSLA"))
    assert (live["since"], live["until"]) == (HEADLINES[0][1], HEADLINES[1][1])
    assert len(live["document_ids"]) == 2 and live["model_version"] == "fake-keyword-1"


def test_rescoring_adds_a_version_beside_the_live_scores(push_source, watchlist, ingest, monkeypatch):
    ingest(push_source, HEADLINES)
    live_before = list(
        SeriesBucket.objects.filter(basis=LIVE).values_list("entity", "width_s", "start", "n", "sum_value")
    )

    class Gloomy(KeywordSentiment):
        def probabilities(self, text):
            return {"bearish": 0.6, "neutral": 0.3, "bullish": 0.1}

    monkeypatch.setattr(scoring, "model_for_version", lambda version: Gloomy(version))
    result = documents_rescore(version="gloomy-2")

    assert result["documents"] == 4 and result["finished"]
    assert Score.objects.filter(model_version="gloomy-2", live=False).count() == 4
    assert Score.objects.filter(live=True, model_version="fake-keyword-1").count() == 4
    assert set(EntityScore.objects.filter(model_version="gloomy-2").values_list("label", flat=True)) == {"negative"}
    assert SeriesBucket.objects.filter(basis="gloomy-2", width_s=3600).aggregate(n=Sum("n"))["n"] == 4
    assert (
        list(SeriesBucket.objects.filter(basis=LIVE).values_list("entity", "width_s", "start", "n", "sum_value"))
        == live_before
    )
    assert documents_rescore(version="gloomy-2")["documents"] == 0


def test_a_new_entity_is_linked_from_the_next_batch_on(push_source, watchlist, ingest):
    ingest(push_source, [("Nvidia rallies on record data-centre sales", T0)])
    assert not Mention.objects.exists()

    Entity.objects.create(symbol="NVDA", name="NVIDIA Corporation", aliases=["Nvidia"])
    ingest(push_source, [("Nvidia gains again on strong demand", T0 + timedelta(hours=1))])

    assert list(Mention.objects.values_list("entity__symbol", "surface")) == [("NVDA", "Nvidia")]


def test_the_real_bundled_models_score_and_link(push_source, watchlist, ingest, real_model):
    ingest(
        push_source,
        [
            ("Apple shares surge after record quarterly profit", T0),
            ("Tesla shares plunge after a weak quarter and a recall", T0 + timedelta(minutes=1)),
        ],
    )

    scores = {s.document.text.split()[0]: s for s in Score.objects.select_related("document")}
    assert {s.model_version for s in scores.values()} == {"default"}
    for score in scores.values():
        assert set(score.probabilities) == {"negative", "neutral", "positive"}
        assert sum(score.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert score.value == pytest.approx(score.probabilities["positive"] - score.probabilities["negative"])
    assert scores["Apple"].value > scores["Tesla"].value
    assert set(EntityScore.objects.values_list("entity__symbol", flat=True)) == {"AAPL", "TSLA"}


def test_the_rescore_api_checks_the_version_records_who_asked_and_queues(
    analyst_client, push_source, watchlist, ingest, monkeypatch
):
    from apps.audit.models import AuditEvent
    from apps.mlops.models import ModelVersion

    ingest(push_source, HEADLINES)
    ModelVersion.objects.create(role="sentiment", version="gloomy-2", kind="fewshot-classifier", artifact_path="/x")
    monkeypatch.setattr(scoring, "model_for_version", lambda version: KeywordSentiment(version))

    unknown = analyst_client.post("/api/sentiment/rescore/", {"version": "nope"}, format="json")
    queued = analyst_client.post("/api/sentiment/rescore/", {"version": "gloomy-2"}, format="json")

    assert unknown.status_code == 400 and "no sentiment model version" in unknown.json()["error"]["message"]
    assert queued.status_code == 202 and queued.json() == {"queued": "rescore", "version": "gloomy-2", "documents": 4}
    assert Score.objects.filter(model_version="gloomy-2").count() == 4  # the task ran (inline in tests)
    assert AuditEvent.objects.get(action="sentiment.rescore").details == {"version": "gloomy-2"}


def test_a_failing_receiver_neither_undoes_the_scores_nor_stops_the_others(
    push_source, watchlist, ingest, django_capture_on_commit_callbacks, caplog
):
    calls = []

    def broken(sender, **kwargs):
        raise RuntimeError("alerting is down")

    def working(sender, **kwargs):
        calls.append(kwargs["basis"])

    scores_committed.connect(broken)
    scores_committed.connect(working)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            ingest(push_source, HEADLINES[:1])
    finally:
        scores_committed.disconnect(broken)
        scores_committed.disconnect(working)

    assert Score.objects.count() == 1
    assert calls == [LIVE, "fake-keyword-1"]
    assert "alerting is down" in caplog.text
