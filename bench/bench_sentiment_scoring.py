"""Sentiment scoring throughput: the batched scoring task against one document at a time.

Runs the app's own services in this process on a fresh embedded-default var dir (SQLite,
migrated here), with the bundled default sentiment model (zero-shot MiniLM; its labels are
not what is measured) and the demo watchlist (spaCy linking). Texts are StockNet tweets when
../shared/datasets/stocknet_tweets_prices is there (cashtags, so most name an entity), else
generated headlines. Timed in the same run:

- ``model.predict`` alone on the texts, batch 64 (the model's share of the work);
- the scoring service with batches of ``--batch`` documents (one transaction, one predict,
  one linking pass per batch: what the Celery task does);
- the same documents scored one per transaction (their scores deleted in between);
- end to end: ``documents_ingest`` (dedup, language) -> scoring -> a series read per entity;
- the time to score ``--target`` (10,000) documents: measured when ``--docs`` reaches it,
  otherwise extrapolated from the batched rate and marked so.

    TRELLIS_TORCH_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python bench/bench_sentiment_scoring.py
    ... --docs 10000   # measure the 10,000 directly (several minutes on one thread)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TRELLIS_TORCH_THREADS", "1")
os.environ["TRELLIS_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-sentiment-")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "TRELLIS_SENTIMENT_MODEL_OVERRIDE"):
    os.environ.pop(name, None)  # the embedded default, the real default model

import argparse  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from apps.sentiment.models import Document, Entity, EntityScore, Mention, Score, SeriesBucket, Source  # noqa: E402
from apps.sentiment.services.documents import IngestItem, documents_ingest  # noqa: E402
from apps.sentiment.services.replay import DATASET  # noqa: E402
from apps.sentiment.services.scoring import documents_score_pending, scoring_model  # noqa: E402
from apps.sentiment.services.series import series_get  # noqa: E402
from apps.sentiment.services.watchlist import watchlist_load_demo  # noqa: E402
from ml.devices import configure_threads  # noqa: E402

T0 = datetime(2015, 1, 1, tzinfo=UTC)
TEMPLATES = (
    "{n} shares rise after strong quarterly results",
    "{n} misses estimates as sales fall",
    "{n} to cut jobs amid weak demand, analysts say",
    "Analysts upgrade {n} on record iPhone-like growth",
    "{n} and {m} sign a cloud partnership",
    "{n} beats, {m} misses: earnings roundup",
)


def texts(count: int) -> list[str]:
    """Distinct tweets of the demo symbols (StockNet), or generated headlines."""
    if DATASET.exists():
        from ml.sentiment.stocknet import iter_tweets

        symbols = list(Entity.objects.values_list("symbol", flat=True))
        seen: dict[str, None] = {}
        for tweet in iter_tweets(DATASET, symbols=symbols):
            seen.setdefault(tweet.text, None)
            if len(seen) >= count:
                break
        if len(seen) >= count:
            return list(seen)
    names = list(Entity.objects.values_list("name", flat=True))
    made = (
        t.format(n=a, m=b) + f" (#{i})"
        for i, (t, a, b) in enumerate(
            zip(itertools.cycle(TEMPLATES), itertools.cycle(names), itertools.cycle(names[1:] + names[:1]))
        )
    )
    return list(itertools.islice(made, count))


def wipe_scores() -> None:
    for model in (SeriesBucket, EntityScore, Mention, Score):
        model.objects.all().delete()


def ingest(source: Source, rows: list[str], offset: int, score: bool = False) -> float:
    started = time.perf_counter()
    for first in range(0, len(rows), 500):
        chunk = rows[first : first + 500]
        items = [
            IngestItem(text=t, language="en", published_at=T0 + timedelta(minutes=offset + first + i))
            for i, t in enumerate(chunk)
        ]
        documents_ingest(source, items, score=score)
    return time.perf_counter() - started


def timed_scoring(batch: int) -> tuple[float, dict]:
    started = time.perf_counter()
    result = documents_score_pending(batch_size=batch)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents for the batched runs")
    parser.add_argument("--single", type=int, default=300, help="documents for the one-at-a-time run")
    parser.add_argument("--batch", type=int, default=64, help="documents per scoring transaction")
    parser.add_argument("--target", type=int, default=10_000, help="documents whose scoring time is reported")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    configure_threads()
    call_command("migrate", "--noinput", "-v", "0")
    watchlist_load_demo()
    model = scoring_model()
    all_texts = texts(args.docs * 2)
    batch_texts, e2e_texts = all_texts[: args.docs], all_texts[args.docs :]
    print(
        f"# {Entity.objects.count()} entities, texts from {'StockNet' if DATASET.exists() else 'templates'}, "
        f"model {getattr(model, 'version', '?')}, torch threads {os.environ['TRELLIS_TORCH_THREADS']}"
    )

    model.predict(batch_texts[:64], batch_size=64)  # load and warm (not timed)
    started = time.perf_counter()
    model.predict(batch_texts, batch_size=64)
    predict_s = time.perf_counter() - started

    source = Source.objects.create(name="bench", kind=Source.Kind.PUSH)
    ingest(source, batch_texts, 0)
    batched_s, batched = timed_scoring(args.batch)
    entity_scores = EntityScore.objects.count()
    wipe_scores()
    Document.objects.exclude(pk__in=Document.objects.order_by("id").values("pk")[: args.single]).delete()
    single_s, single = timed_scoring(1)
    assert single["documents"] == args.single and single["batches"] == args.single

    Document.objects.all().delete()
    wipe_scores()
    e2e = Source.objects.create(name="bench e2e", kind=Source.Kind.PUSH)
    started = time.perf_counter()
    ingest_s = ingest(e2e, e2e_texts, 10 * args.docs)
    _, scored = timed_scoring(args.batch)
    for entity in Entity.objects.all():
        series_get(entity=entity, width=3600, since=T0, until=T0 + timedelta(days=30))
    e2e_s = time.perf_counter() - started

    batched_rate = batched["documents"] / batched_s
    single_rate = single["documents"] / single_s
    rows = [
        ("model.predict alone, batch 64", len(batch_texts), predict_s, ""),
        (f"scoring task, {args.batch} per transaction", batched["documents"], batched_s, ""),
        ("scoring task, 1 per transaction", single["documents"], single_s, ""),
        ("  batched / one at a time", None, None, f"{batched_rate / single_rate:.1f}x"),
        ("end to end: ingest -> score -> series", scored["documents"], e2e_s, f"ingest {ingest_s:.1f} s"),
    ]
    print(f"\n{'step':44} {'docs':>7} {'seconds':>9} {'docs/s':>8}  note")
    for name, n, seconds, note in rows:
        if n is None:
            print(f"{name:44} {'':>7} {'':>9} {'':>8}  {note}")
        else:
            print(f"{name:44} {n:>7} {seconds:>9.2f} {n / seconds:>8.1f}  {note}")
    measured = args.docs >= args.target
    print(
        f"\n{args.target:,} documents with the default model: {args.target / batched_rate:.0f} s "
        f"({'measured' if measured else f'extrapolated from {args.docs:,} at {batched_rate:.1f} docs/s'}); "
        f"{entity_scores} entity scores for {batched['documents']} documents in the batched run"
    )


if __name__ == "__main__":
    main()
