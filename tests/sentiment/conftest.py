"""Sentiment tests: a deterministic keyword model instead of the real one (unless a test asks
for ``real_model``), tasks run in this process, the entity linker in step with each test's
watchlist, and clients of each role.

Shared with the alerting tests (helper-owned modules import nothing from here: pytest gives
these fixtures to every module under tests/sentiment/).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.sentiment.fakes import KeywordSentiment, keyword_model
from tests.servers.conftest import start_process  # noqa: F401  (real worker processes: test_exactly_once)

FAKE = "tests.sentiment.fakes.keyword_model"
WATCHLIST = [
    {"symbol": "AAPL", "name": "Apple Inc.", "aliases": ["iPhone maker"], "exchange": "NASDAQ"},
    {"symbol": "MSFT", "name": "Microsoft Corporation", "aliases": [], "exchange": "NASDAQ"},
    {"symbol": "TSLA", "name": "Tesla, Inc.", "aliases": [], "exchange": "NASDAQ"},
]
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC: the start of a 15 min, 1 h and 1 d bucket


@pytest.fixture(autouse=True)
def sentiment_env(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from apps.sentiment.services import background, linking

    settings.TRELLIS_SENTIMENT_MODEL_OVERRIDE = FAKE
    monkeypatch.setattr(background, "RUN_INLINE", True)
    linking.linker_reset()
    keyword_model().calls.clear()
    yield
    linking.linker_reset()


@pytest.fixture
def fake_model() -> KeywordSentiment:
    """The keyword model scoring uses in this test (its ``calls`` list the texts per predict)."""
    return keyword_model()


@pytest.fixture
def real_model(settings: Any) -> None:
    """Score with the bundled default (zero-shot MiniLM) instead of the keyword model."""
    settings.TRELLIS_SENTIMENT_MODEL_OVERRIDE = ""


@pytest.fixture
def watchlist(db) -> dict[str, Any]:
    """AAPL (alias "iPhone maker"), MSFT and TSLA, on a watchlist named "Tech"."""
    from apps.sentiment.models import Entity, Watchlist

    entities = {row["symbol"]: Entity.objects.create(**row) for row in WATCHLIST}
    tech = Watchlist.objects.create(name="Tech")
    tech.entities.set(entities.values())
    return entities


def _client(make_user: Any, *roles: str) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(make_user(*roles))
    return client


@pytest.fixture
def analyst_client(make_user) -> Any:
    return _client(make_user, "analyst")


@pytest.fixture
def merch_client(make_user) -> Any:
    return _client(make_user, "merchandiser")


@pytest.fixture
def push_source(db) -> Any:
    from apps.sentiment.models import Source

    return Source.objects.create(name="Newswire", kind=Source.Kind.PUSH)


@pytest.fixture
def ingest(db) -> Any:
    """``ingest(source, [("text", published_at), ...])`` -> the IngestReport (scored inline)."""
    from apps.sentiment.services.documents import IngestItem, documents_ingest

    def run(source: Any, rows: list[tuple[str, datetime]], **kwargs: Any) -> Any:
        return documents_ingest(source, [IngestItem(text=t, published_at=when) for t, when in rows], **kwargs)

    return run
