"""GET /api/sentiment/entities/<symbol>/series/: dense buckets, explicit empty ones, rolling windows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from tests.sentiment.conftest import T0

pytestmark = pytest.mark.django_db
URL = "/api/sentiment/entities/AAPL/series/"


def _iso(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


@pytest.fixture
def scored(push_source, watchlist, ingest):
    ingest(
        push_source,
        [
            ("Apple beats estimates", T0 + timedelta(minutes=5)),
            ("Apple rises again on upgrade", T0 + timedelta(minutes=50)),
            ("Apple plunges after recall", T0 + timedelta(hours=3, minutes=1)),
        ],
    )


def test_hourly_series_has_every_bucket_with_empty_ones_explicit(scored, analyst_client):
    response = analyst_client.get(URL, {"width": 3600, "since": _iso(T0), "until": _iso(T0 + timedelta(hours=4))})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["symbol"], body["basis"], body["width"], body["volume"]) == ("AAPL", "live", 3600, 3)
    buckets = body["buckets"]
    assert [b["start"] for b in buckets] == [_iso(T0 + timedelta(hours=h)) for h in range(5)]
    assert [b["volume"] for b in buckets] == [2, 0, 0, 1, 0]
    assert buckets[0]["mean"] == pytest.approx(0.7) and buckets[0]["share_positive"] == 1.0
    assert buckets[1] == {
        "start": _iso(T0 + timedelta(hours=1)),
        "volume": 0,
        "mean": None,
        "share_positive": None,
        "share_negative": None,
        "share_neutral": None,
        "rolling_mean": None,
        "rolling_volume": None,
    }
    assert buckets[3]["mean"] == pytest.approx(-0.7) and buckets[3]["share_negative"] == 1.0


def test_rolling_mean_reads_buckets_before_since(scored, analyst_client):
    since = T0 + timedelta(hours=1)
    body = analyst_client.get(
        URL, {"width": 3600, "since": _iso(since), "until": _iso(T0 + timedelta(hours=3)), "rolling": 3}
    ).json()

    assert [b["volume"] for b in body["buckets"]] == [0, 0, 1]
    assert [b["rolling_volume"] for b in body["buckets"]] == [2, 2, 1]  # the 09:00 bucket is inside the window
    assert body["buckets"][0]["rolling_mean"] == pytest.approx(0.7)
    assert body["buckets"][2]["rolling_mean"] == pytest.approx(-0.7)


def test_quarter_hours_and_days_and_the_version_basis(scored, analyst_client):
    quarters = analyst_client.get(URL, {"width": 900, "since": _iso(T0), "until": _iso(T0 + timedelta(hours=1))})
    days = analyst_client.get(URL, {"width": 86400, "since": _iso(T0 - timedelta(days=1)), "until": _iso(T0)})
    version = analyst_client.get(URL, {"width": 86400, "since": _iso(T0), "until": _iso(T0), "basis": "fake-keyword-1"})
    unknown = analyst_client.get(URL, {"width": 86400, "since": _iso(T0), "until": _iso(T0), "basis": "nope"})

    assert [b["volume"] for b in quarters.json()["buckets"]] == [1, 0, 0, 1, 0]
    assert [b["volume"] for b in days.json()["buckets"]] == [0, 3]
    assert version.json()["volume"] == 3
    assert unknown.json()["volume"] == 0 and len(unknown.json()["buckets"]) == 1


def test_default_range_is_168_buckets_up_to_now(scored, analyst_client):
    body = analyst_client.get(URL).json()

    assert body["width"] == 3600 and len(body["buckets"]) == 168


@pytest.mark.parametrize(
    "query",
    [
        {"width": 60},
        {"rolling": 0},
        {"since": "2025-03-04T00:00:00Z", "until": "2025-03-03T00:00:00Z"},
        {"width": 900, "since": "2020-01-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
    ],
)
def test_bad_queries_are_400_in_the_error_shape(scored, analyst_client, query):
    response = analyst_client.get(URL, query)

    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_unknown_entity_is_404_and_roles_are_checked(scored, analyst_client, merch_client):
    assert analyst_client.get("/api/sentiment/entities/NOPE/series/").status_code == 404
    assert merch_client.get(URL).status_code == 403
    assert APIClient().get(URL).status_code == 401
