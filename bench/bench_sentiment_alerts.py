"""What alert rules cost the scoring pipeline: ingest -> score -> series -> alerts, with and
without rules, in the same run.

Runs the app's services in this process on a fresh embedded-default var dir (SQLite, migrated
here) with the demo watchlist (32 companies, spaCy linking) and the keyword test model, so the
model's own time (bench_sentiment_scoring.py measures it) does not hide the pipeline's.
Generated headlines name one or two watched companies, spread over ``--hours`` hours in
batches of ``--batch``. Timed, each on a fresh copy of the data:

- no rules (the baseline);
- the three demo rules (two on the 32-company watchlist, one on AAPL): each committed batch
  evaluates them at every hourly bucket it touched;
- 3 rules per company (96 rules), the same conditions per company.

Prints documents/s, the time the alert receiver took per batch, and the ratio to the baseline.

    TRELLIS_TORCH_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python bench/bench_sentiment_alerts.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TRELLIS_TORCH_THREADS", "1")
os.environ["TRELLIS_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-sentiment-alerts-")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
os.environ["TRELLIS_SENTIMENT_MODEL_OVERRIDE"] = "tests.sentiment.fakes.keyword_model"
for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
    os.environ.pop(name, None)

import argparse  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from apps.sentiment.models import Alert, AlertRule, Document, Entity, SeriesBucket, Source, Watchlist  # noqa: E402
from apps.sentiment.services import alerting, delivery  # noqa: E402
from apps.sentiment.services.demo import DEMO_RULES, demo_rules  # noqa: E402
from apps.sentiment.services.documents import IngestItem, documents_ingest  # noqa: E402
from apps.sentiment.services.scoring import documents_score_pending  # noqa: E402
from apps.sentiment.services.watchlist import watchlist_load_demo  # noqa: E402

T0 = datetime(2015, 10, 1, tzinfo=UTC)
TEMPLATES = (
    "{a} shares rise after strong results",
    "{a} misses estimates as sales fall",
    "{a} beats, {b} misses: earnings roundup",
    "{a} schedules its annual meeting",
    "Analysts downgrade {a} on weak demand",
    "{a} and {b} sign a partnership",
)


def headlines(count: int, hours: int, seed: int = 7) -> list[tuple[str, datetime]]:
    rng = random.Random(seed)
    symbols = list(Entity.objects.values_list("symbol", flat=True))
    out = []
    for n in range(count):
        a, b = rng.sample(symbols, 2)
        text = rng.choice(TEMPLATES).format(a=f"${a}", b=f"${b}") + f" (item {n})"
        out.append((text, T0 + timedelta(seconds=hours * 3600 * n / count)))
    return out


def reset() -> None:
    Alert.objects.all().delete()
    AlertRule.objects.all().delete()
    Document.objects.all().delete()
    SeriesBucket.objects.all().delete()


def per_company_rules() -> None:
    for entity in Entity.objects.all():
        for spec in DEMO_RULES:
            values = {k: v for k, v in spec.items() if k not in ("watchlist", "entity", "name")}
            AlertRule.objects.create(name=f"{spec['name']} {entity.symbol}", entity=entity, **values)


def run(rows: list[tuple[str, datetime]], batch: int) -> dict[str, float]:
    """Ingests and scores ``rows`` in batches; the receiver's time is measured around it."""
    source = Source.objects.get_or_create(name="bench", kind=Source.Kind.PUSH)[0]
    receiver_s = [0.0]
    original = alerting.alerts_evaluate

    def timed(**kwargs):
        started = time.perf_counter()
        try:
            return original(**kwargs)
        finally:
            receiver_s[0] += time.perf_counter() - started

    alerting.alerts_evaluate = timed
    started = time.perf_counter()
    try:
        for first in range(0, len(rows), batch):
            chunk = rows[first : first + batch]
            documents_ingest(source, [IngestItem(text=t, published_at=w) for t, w in chunk], score=False)
            documents_score_pending(batch_size=batch)
    finally:
        alerting.alerts_evaluate = original
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "docs_per_s": len(rows) / wall,
        "alerts_s": receiver_s[0],
        "alerts": Alert.objects.count(),
        "batches": -(-len(rows) // batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=72, help="the data's time span")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    call_command("migrate", verbosity=0)
    watchlist_load_demo()
    delivery.RUN_INLINE = True  # socket deliveries sent in this process: part of the cost
    rows = headlines(args.docs, args.hours)
    documents_ingest(
        Source.objects.get_or_create(name="warm-up", kind=Source.Kind.PUSH)[0],
        [IngestItem(text="$AAPL warm-up", published_at=T0)],
        score=False,
    )
    documents_score_pending()  # spaCy and the linker load here, not in the first timed run

    results = {}
    for name, setup in (
        ("no rules", lambda: None),
        ("3 demo rules", demo_rules),
        (f"{3 * Entity.objects.count()} rules (3 per company)", per_company_rules),
    ):
        reset()
        setup()
        results[name] = run(rows, args.batch)
    base = results["no rules"]["docs_per_s"]
    print(
        f"\n{args.docs} headlines over {args.hours} h, batches of {args.batch}, "
        f"{Entity.objects.count()} companies on watchlist {Watchlist.objects.first().name!r}, "
        f"keyword model, SQLite, TRELLIS_TORCH_THREADS={os.environ['TRELLIS_TORCH_THREADS']}"
    )
    print(f"{'setup':<30}{'docs/s':>9}{'vs none':>9}{'alerts s':>10}{'ms/batch':>10}{'alerts':>8}")
    for name, r in results.items():
        print(
            f"{name:<30}{r['docs_per_s']:>9.1f}{r['docs_per_s'] / base:>9.2f}{r['alerts_s']:>10.2f}"
            f"{1000 * r['alerts_s'] / r['batches']:>10.1f}{r['alerts']:>8}"
        )


if __name__ == "__main__":
    main()
