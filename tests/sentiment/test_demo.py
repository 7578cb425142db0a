"""The sentiment demo on a tiny slice with the real bundled encoder: a few-shot model trained on
part of the tweets' train split, evaluated on their validation split and promoted, the demo
rules, a StockNet replay scored by that model (series and alerts), a backtest; a second run
changes nothing. Skipped when the data sets are not beside the repository; without them the
command says so and the dashboard shows the chance-level banner."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.management import call_command

from apps.mlops.models import ModelVersion
from apps.mlops.services.serving import serving_reset
from apps.sentiment.models import Alert, AlertRule, BacktestRun, Document, Score, SeriesBucket
from apps.sentiment.services.demo import DATASETS, DEMO_RULES, datasets_missing, demo_run
from tests.sentiment.fixtures_alerts import deliver_inline

__all__ = ["deliver_inline"]

pytestmark = pytest.mark.django_db
TINY = {
    "symbols": ("AAPL",),
    "start": date(2015, 10, 20),
    "end": date(2015, 10, 30),
    "limit_rows": 150,
    "tweet_limit": 400,
}


@pytest.fixture
def isolated(settings, tmp_path, monkeypatch, real_model, deliver_inline):
    """Uploads and artifacts under tmp_path, no broker, the real model path, and the process
    registry back on the bundled default afterwards."""
    from ml.registry import default_registry  # tests may reach the registry; apps may not

    monkeypatch.setattr("apps.mlops.services.training.training_job_enqueue", lambda job_id: None)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    serving_reset()
    yield
    registry = default_registry()
    registry.ensure_active("sentiment", None)
    registry.unload("sentiment")
    serving_reset()


@pytest.mark.django_db(transaction=True)  # commits as in the command: rules fire as scores are committed
@pytest.mark.skipif(bool(datasets_missing()), reason=f"the demo data sets are not under {DATASETS}")
def test_the_demo_trains_promotes_replays_alerts_and_backtests(isolated):
    report = demo_run(**TINY)

    # a real few-shot model, evaluated on the validation split, is what scores now
    version = ModelVersion.objects.get(role="sentiment", status="active")
    assert report.model["trained"] and report.model["version"] == version.version
    f1 = version.metrics["valid_weighted_f1"]
    assert 0.45 < f1 <= 1.0 and f1 > version.metrics["valid_default_weighted_f1"]  # better than chance level
    assert version.metrics["valid_rows"] == 3 * 150
    assert set(version.labels) == {"bearish", "bullish", "neutral"}

    # the slice went through ingestion and scoring with it: series, prices, alerts, a backtest
    assert report.replay["tweets"] == 400 and report.replay["scored"] == report.replay["created"] > 300
    assert set(Score.objects.values_list("model_version", flat=True)) == {version.version}
    assert SeriesBucket.objects.filter(entity__symbol="AAPL", width_s=3600, basis="live").count() > 10
    assert AlertRule.objects.filter(name__in=[r["name"] for r in DEMO_RULES]).count() == len(DEMO_RULES)
    spikes = Alert.objects.filter(rule__name="Demo: tweet volume spike", entity__symbol="AAPL")
    assert spikes.exists()  # the results-day burst of AAPL tweets
    assert report.alerts == Alert.objects.count()
    assert BacktestRun.objects.get().pk == report.backtest["run"]

    # a second run keeps everything as it is
    documents = Document.objects.count()
    again = demo_run(**TINY)
    assert not again.model["trained"] and again.replay == {"skipped": "the StockNet slice was replayed before"}
    assert Document.objects.count() == documents and ModelVersion.objects.filter(role="sentiment").count() == 1


def test_without_the_data_sets_it_skips_and_says_so(tmp_path, capsys):
    report = demo_run(root=tmp_path / "nothing-here")
    assert report.skipped.startswith("no data set at") and not report.model
    call_command("sentiment_demo", "--path", str(tmp_path / "nothing-here"))
    out = capsys.readouterr().out
    assert "sentiment demo skipped" in out and "chance level" in out
    assert not ModelVersion.objects.exists() and not Document.objects.exists()
