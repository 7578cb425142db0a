"""Entities, watchlists and prices through the API and the services; the demo watchlist."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.sentiment.models import Entity, Price, Watchlist
from apps.sentiment.services.prices import prices_import_csv
from apps.sentiment.services.watchlist import DEMO_WATCHLIST, entity_create, watchlist_load_demo

pytestmark = pytest.mark.django_db


def test_an_entity_is_created_with_its_symbol_cleaned(analyst_client):
    response = analyst_client.post(
        "/api/sentiment/entities/",
        {"symbol": "$nvda", "name": "NVIDIA Corporation", "aliases": ["Nvidia", " team  green "]},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["symbol"] == "NVDA"
    assert Entity.objects.get().aliases == ["Nvidia", "team green"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"symbol": "apple inc", "name": "Apple"}, "symbol: use 1-10"),
        ({"symbol": "TOOLONGSYMBOL", "name": "X"}, "symbol: use 1-10"),
        ({"symbol": "AAPL", "name": "Apple Two"}, "AAPL is already on the watchlist"),
        ({"symbol": "NVDA", "name": "Nvidia", "aliases": ["GPU co", "gpu CO"]}, "listed twice"),
        ({"symbol": "NVDA", "name": "Nvidia", "aliases": ["Nvidia"]}, "listed twice"),
        ({"symbol": "AAPL2", "name": "Apple, Inc"}, "already a name of AAPL"),  # same name to the linker
        ({"symbol": "NVDA", "name": "Nvidia", "aliases": ["iPhone Maker"]}, "already a name of AAPL"),
        ({"symbol": "NVDA", "name": "!!!"}, "name: needs letters"),
    ],
)
def test_entity_validation_names_the_problem(watchlist, analyst_client, values, message):
    response = analyst_client.post("/api/sentiment/entities/", values, format="json")

    assert response.status_code == 400
    assert message in response.json()["error"]["message"], response.json()


def test_entity_update_keeps_the_symbol_and_delete_removes_it(watchlist, analyst_client):
    renamed = analyst_client.patch("/api/sentiment/entities/aapl/", {"aliases": ["Cupertino"]}, format="json")
    moved = analyst_client.patch("/api/sentiment/entities/AAPL/", {"symbol": "APPL"}, format="json")
    deleted = analyst_client.delete("/api/sentiment/entities/TSLA/")

    assert renamed.status_code == 200 and renamed.json()["aliases"] == ["Cupertino"]
    assert moved.status_code == 400 and "cannot change" in moved.json()["error"]["message"]
    assert deleted.status_code == 204
    assert sorted(Entity.objects.values_list("symbol", flat=True)) == ["AAPL", "MSFT"]
    assert analyst_client.get("/api/sentiment/entities/TSLA/").status_code == 404


def test_watchlists_take_known_symbols_only(watchlist, analyst_client):
    bad = analyst_client.post("/api/sentiment/watchlists/", {"name": "EV", "entities": ["TSLA", "RIVN"]}, format="json")
    made = analyst_client.post("/api/sentiment/watchlists/", {"name": "EV", "entities": ["tsla"]}, format="json")
    pk = made.json()["id"]
    changed = analyst_client.patch(f"/api/sentiment/watchlists/{pk}/", {"entities": ["TSLA", "AAPL"]}, format="json")
    clash = analyst_client.patch(f"/api/sentiment/watchlists/{pk}/", {"name": "tech"}, format="json")

    assert bad.status_code == 400 and "RIVN" in bad.json()["error"]["message"]
    assert made.status_code == 201 and made.json()["entities"] == ["TSLA"]
    assert sorted(changed.json()["entities"]) == ["AAPL", "TSLA"]
    assert clash.status_code == 400
    assert analyst_client.delete(f"/api/sentiment/watchlists/{pk}/").status_code == 204
    assert list(Watchlist.objects.values_list("name", flat=True)) == ["Tech"]


def test_the_demo_watchlist_loads_once_and_keeps_analysts_edits(make_user):
    Entity.objects.create(symbol="AAPL", name="Apple Inc.", aliases=["Cupertino"])

    first = watchlist_load_demo()
    again = watchlist_load_demo()

    assert DEMO_WATCHLIST.exists()
    assert len(first["created"]) >= 20 and "AAPL" in first["kept"] and first["skipped"] == []
    assert again["created"] == []
    assert Entity.objects.get(symbol="AAPL").aliases == ["Cupertino"]
    demo = Watchlist.objects.get(name="Demo")
    assert demo.entities.count() == Entity.objects.count()
    with pytest.raises(ValidationError):
        entity_create(values={"symbol": "GOOGX", "name": "Google"}, user=None)  # an alias of the demo's GOOG


def test_prices_from_a_csv_upsert_and_report_unknown_symbols(watchlist, analyst_client):
    data = (
        b"symbol,date,open,close,adj_close,volume\n"
        b"AAPL,2025-03-03,10,11,10.5,1000\n"
        b"AAPL,2025-03-04,11,12,,\n"
        b"ZZZZ,2025-03-04,1,1,1,1\n"
        b"AAPL,03/05/2025,1,1,1,1\n"
        b"TSLA,2025-03-04,1,,1,1\n"
    )

    report = prices_import_csv(data)
    again = analyst_client.post(
        "/api/sentiment/prices/",
        {"file": SimpleUploadedFile("p.csv", data.replace(b",11,10.5", b",13,10.5"))},
        format="multipart",
    )
    listed = analyst_client.get("/api/sentiment/entities/AAPL/prices/?since=2025-03-04")

    assert report.stored == 2 and report.unknown_symbols == ["ZZZZ"]
    assert [e["line"] for e in report.line_errors] == [4, 5, 6]
    assert report.line_errors[2]["error"] == "close: required"
    assert again.status_code == 200 and again.json()["stored"] == 2
    assert Price.objects.get(entity__symbol="AAPL", date="2025-03-03").close == 13  # upserted, not doubled
    assert listed.json() == [{"date": "2025-03-04", "open": 11.0, "close": 12.0, "adj_close": None, "volume": None}]
