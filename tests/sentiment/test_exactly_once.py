"""Exactly-once scoring with real Celery worker processes: the first is killed (SIGKILL) in the
middle of a batch, a second one finishes; every document ends with exactly one score and the
buckets count exactly the entity scores.

The first worker is slowed by the test-only setting ``TRELLIS_SENTIMENT_MODEL_OVERRIDE``
(``tests.sentiment.fakes.slow_keyword_model``): each predict call drops a marker file, then
sleeps ``SLOW_S``. Once the second marker appears the first batch has committed and the
second is inside its transaction, predicting: that is when the worker is killed. The
second worker runs the same fake without the sleep.

Runs on the embedded default (SQLite file, filesystem broker) and, with REDIS_URL and
DATABASE_URL as in CI, on PostgreSQL (``select_for_update(skip_locked=True)``) and Redis.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.servers.conftest import PYTHON, child_env, manage, needs_redis, shared_database_url

pytestmark = [pytest.mark.servers, pytest.mark.timeout(600)]

DOCS, BATCH = 24, 4
SLOW_S = 6.0  # seconds the first worker sleeps in each predict: ample time to kill it mid-batch
WAIT_S = 150  # seconds: a worker imports Django, torch and spaCy before its first batch

SEED = f"""
from datetime import UTC, datetime, timedelta
from apps.sentiment.models import Entity, Source
from apps.sentiment.services.documents import IngestItem, documents_ingest
Entity.objects.create(symbol="AAPL", name="Apple Inc.")
Entity.objects.create(symbol="MSFT", name="Microsoft Corporation")
source = Source.objects.create(name="wire", kind="push")
t0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
items = [IngestItem(text=f"{{'Apple' if i % 2 else 'Microsoft'}} headline {{i}} {{'beats' if i % 3 else 'misses'}}",
                    published_at=t0 + timedelta(minutes=7 * i)) for i in range({DOCS})]
print(documents_ingest(source, items, score=False).created)
"""
COUNTS = """
import json
from django.db.models import Count, Sum
from apps.sentiment.models import Document, EntityScore, Mention, Score, SeriesBucket
per_doc = list(Score.objects.values("document").annotate(n=Count("id")).values_list("n", flat=True))
buckets = {f"{b}:{w}": n for b, w, n in SeriesBucket.objects.values_list("basis", "width_s")
           .annotate(total=Sum("n")).values_list("basis", "width_s", "total")}
print("COUNTS=" + json.dumps({
    "documents": Document.objects.count(), "scores": Score.objects.count(),
    "live": Score.objects.filter(live=True).count(), "most_per_doc": max(per_doc, default=0),
    "unscored": Document.objects.filter(scores__isnull=True).count(),
    "mentions": Mention.objects.count(), "entity_scores": EntityScore.objects.count(),
    "versions": sorted(set(Score.objects.values_list("model_version", flat=True))), "buckets": buckets}))
"""


def worker_argv(node: str, queue: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool",
        "solo",
        "-c",
        "1",
        "--loglevel",
        "INFO",
        "--hostname",
        node,
        "--queues",
        queue,
    ]


def counts(env: dict[str, str]) -> dict:
    out = manage(["shell", "-c", COUNTS], env).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("COUNTS=")).removeprefix("COUNTS="))


def send_scoring(env: dict[str, str], queue: str, *, wait: bool) -> None:
    code = (
        "from apps.sentiment.tasks import documents_score_pending_task as t\n"
        f"r = t.apply_async(queue={queue!r})\n" + (f"print(r.get(timeout={WAIT_S}))\n" if wait else "")
    )
    manage(["shell", "-c", code], env, timeout=WAIT_S + 60)


def wait_for(predicate, what: str, worker) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker.proc.poll() is not None:
            pytest.fail(f"worker exited with {worker.proc.returncode} before {what}:\n{worker.log_tail()}")
        time.sleep(0.1)
    pytest.fail(f"no {what} after {WAIT_S} s:\n{worker.log_tail()}")


def kill_mid_batch_then_finish(start_process: Any, tmp_path: Path, env: dict[str, str]) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    queue = f"sentiment-once-{uuid.uuid4().hex[:8]}"  # ours alone, on a shared Redis too
    base = {
        **env,
        "TRELLIS_SENTIMENT_MODEL_OVERRIDE": "tests.sentiment.fakes.slow_keyword_model",
        "TRELLIS_SENTIMENT_SCORING_BATCH": str(BATCH),
        "TRELLIS_SENTIMENT_FAKE_MARKER_DIR": str(markers),
    }
    assert manage(["shell", "-c", SEED], base).stdout.strip().endswith(str(DOCS))

    slow = start_process(
        "worker-slow", worker_argv(f"slow-{queue}@test", queue), {**base, "TRELLIS_SENTIMENT_FAKE_DELAY_S": str(SLOW_S)}
    )
    send_scoring(base, queue, wait=False)
    wait_for(lambda: len(list(markers.iterdir())) >= 2, "second batch", slow)
    os.killpg(slow.proc.pid, signal.SIGKILL)  # inside batch 2's transaction, while it predicts
    slow.proc.wait(timeout=30)

    after_kill = counts(base)
    assert after_kill["scores"] == BATCH, after_kill  # batch 1 committed, batch 2 left nothing at all
    assert after_kill["entity_scores"] == after_kill["mentions"] == BATCH
    assert after_kill["buckets"]["live:3600"] == BATCH

    fast = start_process("worker-fast", worker_argv(f"fast-{queue}@test", queue), base)
    send_scoring(base, queue, wait=True)  # what the beat does every 10 s
    final = counts(base)

    assert final["documents"] == final["scores"] == final["live"] == DOCS, (final, fast.log_tail())
    assert (final["most_per_doc"], final["unscored"]) == (1, 0)
    assert final["versions"] == ["fake-keyword-1"]
    assert final["entity_scores"] == final["mentions"] == DOCS  # each headline names one company
    assert final["buckets"] == {
        f"{basis}:{width}": DOCS for basis in ("live", "fake-keyword-1") for width in (900, 3600, 86400)
    }


def test_embedded_worker_killed_mid_batch(start_process, tmp_path):
    env = child_env(tmp_path / "var")
    manage(["migrate", "--noinput", "-v", "0"], env)
    kill_mid_batch_then_finish(start_process, tmp_path, env)


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_postgresql_worker_killed_mid_batch(start_process, tmp_path):
    env = {**child_env(tmp_path / "var"), "REDIS_URL": os.environ["REDIS_URL"], "DATABASE_URL": shared_database_url()}
    kill_mid_batch_then_finish(start_process, tmp_path, env)
