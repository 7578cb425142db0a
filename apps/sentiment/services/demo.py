"""The sentiment demo (``manage.py sentiment_demo``, run by ``make run``).

With ``../shared/datasets`` beside the repository:

1. the demo watchlist (ml/sentiment/data/demo_watchlist.json) is loaded;
2. if no sentiment model version is active yet, a few-shot model (a linear head on the
   frozen MiniLM embeddings) is trained on the financial-tweets training split (about half a
   minute), evaluated on its validation split (``metrics["valid_weighted_f1"]``, the figure
   the dashboard shows) and promoted; the bundled zero-shot default scores at chance level
   (weighted F1 about 0.33), so a newcomer never sees it;
3. the demo alert rules are created (thresholds chosen from the slice below, see
   ``DEMO_RULES``), then a StockNet slice is replayed through ingestion with no sleep, so the
   rules are evaluated as its scores arrive and the series exist;
4. a backtest runs on the replayed days.

Each step is skipped when already done, so running it again changes nothing.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from apps.mlops.models import ModelRole, ModelVersion, TrainingJob
from apps.mlops.services.datasets import dataset_create
from apps.mlops.services.training import training_job_create, training_job_run
from apps.mlops.services.versions import model_version_evaluate, model_version_promote
from apps.sentiment.models import Alert, AlertRule, Document, Entity, Source, Watchlist
from apps.sentiment.services.backtest import BacktestParams, backtest_run
from apps.sentiment.services.replay import replay_stocknet
from apps.sentiment.services.watchlist import DEMO_NAME, watchlist_load_demo

log = logging.getLogger(__name__)

DATASETS = Path(settings.BASE_DIR).parent / "shared" / "datasets"
TWEETS = "twitter_financial_news_sentiment"
STOCKNET = "stocknet_tweets_prices"
TWEET_LABELS = {"0": "bearish", "1": "bullish", "2": "neutral"}  # the data set's README
# October 2015: the big five's quarterly results (MSFT, AMZN, GOOG Oct 22; AAPL Oct 27; FB Nov 4).
# About 2,300 tweets: a minute to score and link on two cores.
SLICE_SYMBOLS = ("AAPL", "MSFT", "AMZN", "GOOG", "FB")
SLICE_START, SLICE_END = date(2015, 10, 1), date(2015, 11, 1)
# Rules that fire on that slice, thresholds chosen by looking at it as the demo scores it: 1,592
# distinct tweets (of 2,333; the rest repeat a text) scored by the demo model, 830 neutral, 632
# positive, 130 negative (StockNet's crowd is mostly bullish), then each candidate threshold
# evaluated on the five's series. Hourly volume spikes of z >= 4 over the previous 48 hours with
# 8+ mentions: 4 (AAPL Oct 1; AAPL Oct 27, MSFT and AMZN Oct 22 in the hour their results came
# out); with 15+ only AAPL's. Hours with a mean at or below -0.15 and 3+ mentions: 4 (AAPL Oct 1,
# 2 and 6, FB Oct 23); at -0.2 one. AAPL's daily mean (0.0 to 0.36) is above 0.3 with 20+
# mentions on 6 days: the days around its results (Oct 26-30) and Oct 20. About 14 alerts in all.
DEMO_RULES: tuple[dict[str, Any], ...] = (
    {
        "name": "Demo: tweet volume spike",
        "watchlist": DEMO_NAME,
        "condition": AlertRule.Condition.VOLUME_SPIKE,
        "threshold": 4.0,
        "width_s": 3600,
        "baseline": 48,
        "min_volume": 8,
        "cooldown_s": 6 * 3600,
    },
    {
        "name": "Demo: negative hour",
        "watchlist": DEMO_NAME,
        "condition": AlertRule.Condition.LEVEL_BELOW,
        "threshold": -0.15,
        "width_s": 3600,
        "window": 1,
        "min_volume": 3,
        "cooldown_s": 12 * 3600,
    },
    {
        "name": "Demo: AAPL bullish day",
        "entity": "AAPL",
        "condition": AlertRule.Condition.LEVEL_ABOVE,
        "threshold": 0.3,
        "width_s": 86400,
        "window": 1,
        "min_volume": 20,
        "cooldown_s": 86400,
    },
)


@dataclass
class DemoReport:
    skipped: str = ""
    watchlist: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    rules: int = 0
    replay: dict[str, Any] = field(default_factory=dict)
    alerts: int = 0
    backtest: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def datasets_missing(root: Path = DATASETS) -> str:
    """Why the demo cannot run ("" when it can)."""
    for name in (TWEETS, STOCKNET):
        if not (root / name).is_dir():
            return f"no data set at {root / name}"
    return ""


def _tweets_upload(path: Path, name: str) -> ContentFile:
    """The CSV with label names instead of the data set's 0/1/2 (bearish/bullish/neutral)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("label") in TWEET_LABELS and (row.get("text") or "").strip():
                writer.writerow([row["text"], TWEET_LABELS[row["label"]]])
    return ContentFile(out.getvalue().encode("utf-8"), name=name)


def demo_model(root: Path, *, user: Any = None, limit_rows: int | None = None) -> dict[str, Any]:
    """Trains, evaluates and promotes the few-shot demo model unless a sentiment version is active."""
    active = ModelVersion.objects.filter(role=ModelRole.SENTIMENT, status=ModelVersion.Status.ACTIVE).first()
    if active is not None:
        return {
            "version": active.version,
            "trained": False,
            "valid_weighted_f1": active.metrics.get("valid_weighted_f1"),
        }
    folder = root / TWEETS
    train = dataset_create(
        uploaded_file=_trimmed(_tweets_upload(folder / "sent_train.csv", "tweets-train.csv"), limit_rows),
        name="Financial tweets (train split)",
        role=ModelRole.SENTIMENT,
        user=user,
    )
    valid = dataset_create(
        uploaded_file=_trimmed(_tweets_upload(folder / "sent_valid.csv", "tweets-valid.csv"), limit_rows),
        name="Financial tweets (validation split)",
        role=ModelRole.SENTIMENT,
        user=user,
    )
    job = training_job_create(
        dataset=train,
        method=TrainingJob.Method.FEWSHOT,
        params={},
        user=user,
        idempotency_key=f"sentiment-demo-{train.sha256[:16]}",
    )
    job = training_job_run(job.pk)
    if job.status != TrainingJob.Status.SUCCEEDED:
        raise RuntimeError(f"the demo model's training job {job.pk} ended {job.status}: {job.error}")
    version = ModelVersion.objects.get(training_job=job)
    report = model_version_evaluate(version=version, dataset=valid)
    candidate = report["candidate"]
    version.metrics = {
        **version.metrics,
        "valid_weighted_f1": candidate["weighted_f1"],
        "valid_macro_f1": candidate["macro_f1"],
        "valid_accuracy": candidate["accuracy"],
        "valid_rows": report["rows"],
        "valid_dataset": valid.pk,
        "valid_default_weighted_f1": report["active"]["weighted_f1"],
    }
    version.save(update_fields=["metrics"])
    model_version_promote(version=version, user=user, origin="manage.py sentiment_demo")
    return {
        "version": version.version,
        "trained": True,
        "valid_weighted_f1": candidate["weighted_f1"],
        "default_weighted_f1": report["active"]["weighted_f1"],
        "rows": report["rows"],
        "job": job.pk,
    }


def _trimmed(upload: ContentFile, limit_rows: int | None) -> ContentFile:
    """The first ``limit_rows`` rows of each label (tests keep training to a second)."""
    if limit_rows is None:
        return upload
    rows = list(csv.reader(io.StringIO(upload.read().decode("utf-8"))))
    kept, seen = [rows[0]], {}
    for row in rows[1:]:
        seen[row[1]] = seen.get(row[1], 0) + 1
        if seen[row[1]] <= limit_rows:
            kept.append(row)
    out = io.StringIO()
    csv.writer(out).writerows(kept)
    return ContentFile(out.getvalue().encode("utf-8"), name=upload.name)


def demo_rules(*, user: Any = None) -> int:
    """Creates the demo rules that are missing (by name); returns how many exist."""
    with transaction.atomic():
        for spec in DEMO_RULES:
            values = dict(spec)
            if "watchlist" in values:
                values["watchlist"] = Watchlist.objects.filter(name=values["watchlist"]).first()
            else:
                values["entity"] = Entity.objects.filter(symbol=values["entity"]).first()
            if values.get("watchlist") is None and values.get("entity") is None:
                continue  # the demo watchlist lacks it (an entry skipped for a clash)
            AlertRule.objects.get_or_create(name=values.pop("name"), defaults={**values, "created_by": user})
    return AlertRule.objects.filter(name__in=[r["name"] for r in DEMO_RULES]).count()


def demo_run(
    *,
    root: Path = DATASETS,
    user: Any = None,
    symbols: tuple[str, ...] = SLICE_SYMBOLS,
    start: date = SLICE_START,
    end: date = SLICE_END,
    limit_rows: int | None = None,
    tweet_limit: int | None = None,
    say: Callable[[str], None] = log.info,
) -> DemoReport:
    """Runs every step (see the module docstring); skips when the data sets are not there."""
    report = DemoReport()
    missing = datasets_missing(root)
    if missing:
        report.skipped = missing
        return report
    clock = time.perf_counter()
    report.watchlist = watchlist_load_demo()
    report.seconds["watchlist"] = time.perf_counter() - clock
    say(f"watchlist: {report.watchlist}")
    report.model = demo_model(root, user=user, limit_rows=limit_rows)
    report.seconds["model"] = time.perf_counter() - clock
    say(f"model: {report.model}")
    report.rules = demo_rules(user=user)
    if Document.objects.filter(source__kind=Source.Kind.REPLAY).exists():
        report.replay = {"skipped": "the StockNet slice was replayed before"}
    else:
        replayed = replay_stocknet(
            symbols=list(symbols), start=start, end=end, path=root / STOCKNET, sleep=False, limit=tweet_limit
        )
        report.replay = {
            "tweets": replayed.tweets,
            "created": replayed.created,
            "scored": replayed.scored,
            "prices": replayed.prices,
            "wall_s": round(replayed.wall_s, 1),
        }
    report.seconds["replay"] = time.perf_counter() - clock
    say(f"replay: {report.replay}")
    report.alerts = Alert.objects.filter(rule__name__in=[r["name"] for r in DEMO_RULES]).count()
    run = backtest_run(params=BacktestParams(symbols=tuple(symbols), min_volume=3, permutations=1000), user=user)
    report.backtest = {"run": run.pk, "summary": run.results["summary"]}
    report.seconds["total"] = time.perf_counter() - clock
    return report
