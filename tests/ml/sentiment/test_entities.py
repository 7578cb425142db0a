"""Watchlist entity linking with the real bundled spaCy model (loaded once for the module)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.sentiment.entities import EntityLinker, Mention, WatchEntity, load_watchlist, shared_pipeline

DATA = Path(__file__).resolve().parents[3] / "ml" / "sentiment" / "data"

WATCHLIST = [
    WatchEntity("AAPL", "Apple Inc.", ("iPhone maker",), "NASDAQ"),
    WatchEntity("MSFT", "Microsoft Corporation"),
    WatchEntity("IBM", "International Business Machines", ("Big Blue",), "NYSE"),
    WatchEntity("VOD", "Vodafone Group plc", (), "LON"),
    WatchEntity("IT", "Gartner Inc."),
    WatchEntity("ON", "ON Semiconductor"),
    WatchEntity("NOW", "ServiceNow"),
    WatchEntity("MCD", "McDonald's Corporation", ("McDonalds",)),
    WatchEntity("JNJ", "Johnson & Johnson", ("J&J",)),
]


@pytest.fixture(scope="module")
def linker() -> EntityLinker:
    return EntityLinker(WATCHLIST)


def linked(linker: EntityLinker, text: str) -> list[tuple[str, str, str]]:
    mentions = linker.link(text)
    for m in mentions:  # offsets always point at the surface
        assert text[m.start : m.end] == m.surface
    return [(m.symbol, m.surface, m.how) for m in mentions]


def test_cashtags_in_upper_or_lower_case(linker):
    text = "$AAPL jumps; $aapl bulls cheer, $Aapl is not a ticker and $MSFT lags"
    assert linked(linker, text) == [
        ("AAPL", "$AAPL", "cashtag"),
        ("AAPL", "$aapl", "cashtag"),
        ("MSFT", "$MSFT", "cashtag"),
    ]
    first = linker.link(text)[0]
    assert first == Mention("AAPL", 0, 5, "$AAPL", "cashtag")


def test_exchange_prefixes(linker):
    text = "NASDAQ:AAPL and NYSE: IBM gain, LON:VOD slips (NASDAQ:MSFT flat)"
    assert linked(linker, text) == [
        ("AAPL", "NASDAQ:AAPL", "exchange"),
        ("IBM", "NYSE: IBM", "exchange"),
        ("VOD", "LON:VOD", "exchange"),
        ("MSFT", "NASDAQ:MSFT", "exchange"),
    ]


def test_names_aliases_suffixes_and_possessives(linker):
    text = "Apple Inc. beat, Microsoft Corp's cloud grew, Big Blue's margins and the iPhone maker's sales rose"
    assert linked(linker, text) == [
        ("AAPL", "Apple Inc.", "name"),
        ("MSFT", "Microsoft Corp", "name"),
        ("IBM", "Big Blue", "alias"),
        ("AAPL", "iPhone maker", "alias"),
    ]
    assert linked(linker, "APPLE SHARES SURGE; Gartner, Inc. falls") == [
        ("AAPL", "APPLE", "name"),
        ("IT", "Gartner, Inc.", "name"),
    ]
    assert linked(linker, "McDonald’s and McDonalds; Johnson & Johnson and J&J's") == [
        ("MCD", "McDonald’s", "name"),
        ("MCD", "McDonalds", "alias"),
        ("JNJ", "Johnson & Johnson", "name"),
        ("JNJ", "J&J", "alias"),
    ]


def test_bare_symbols_link_only_when_upper_case(linker):
    assert linked(linker, "AAPL and MSFT rallied") == [("AAPL", "AAPL", "symbol"), ("MSFT", "MSFT", "symbol")]
    assert linked(linker, "aapl and msft rallied") == []


def test_stop_listed_symbols_need_a_cashtag_or_exchange(linker):
    # "IT", "ON" and "NOW" are watched tickers, and everyday words
    assert linked(linker, "IT budgets are ON track NOW, says A survey") == []
    assert linked(linker, "$IT slumps, NASDAQ:ON rises and NYSE:NOW is flat") == [
        ("IT", "$IT", "cashtag"),
        ("ON", "NASDAQ:ON", "exchange"),
        ("NOW", "NYSE:NOW", "exchange"),
    ]


def test_lower_case_name_is_the_common_noun_in_mixed_case_text(linker):
    assert linked(linker, "She ate an apple at lunch.") == []
    # a lower-cased tweet stream cannot tell, so the name links there
    assert linked(linker, "apple and microsoft up today") == [("AAPL", "apple", "name"), ("MSFT", "microsoft", "name")]


def test_unknown_orgs_are_reported_not_linked(linker):
    found = linker.analyse("Goldman Sachs upgrades Apple to buy, NASDAQ data show")
    assert [m.symbol for m in found.mentions] == ["AAPL"]
    assert [o.surface for o in found.unknown_orgs] == ["Goldman Sachs"]  # the exchange is not reported
    org = found.unknown_orgs[0]
    assert found.doc is not None and found.doc.text[org.start : org.end] == "Goldman Sachs"


def test_watchlist_change_rebuilds_rules_not_the_model(linker):
    other = EntityLinker([WatchEntity("TSLA", "Tesla Inc.")])
    assert other.nlp is linker.nlp is shared_pipeline().nlp  # one spaCy model per process
    text = "Tesla and $AAPL both rise"
    assert linked(other, text) == [("TSLA", "Tesla", "name")]
    other.set_entities([WatchEntity("AAPL", "Apple Inc.")])
    assert linked(other, text) == [("AAPL", "$AAPL", "cashtag")]
    assert [o.surface for o in other.analyse(text).unknown_orgs] == ["Tesla"]
    assert [e.symbol for e in other.entities] == ["AAPL"]
    assert [m.symbol for m in linker.link(text)] == ["AAPL"]  # the first linker is untouched


def test_link_many_keeps_one_result_per_text(linker):
    texts = ["Microsoft hired.", "", "Nothing to see here", "$MSFT up", "NYSE: IBM down"]
    results = linker.link_many(texts, batch_size=2)
    assert [[m.symbol for m in r] for r in results] == [["MSFT"], [], [], ["MSFT"], ["IBM"]]
    assert results == [linker.link(t) for t in texts]


def test_parse_gives_a_dependency_parse(linker):
    found = linker.analyse("Apple beats estimates and Microsoft misses.", parse=True)
    assert found.doc is not None and found.doc.has_annotation("DEP")
    assert found.symbols == ["AAPL", "MSFT"]
    assert not linker.analyse("Apple beats.").doc.has_annotation("DEP")


def test_bad_input_gives_clear_errors(linker):
    with pytest.raises(TypeError, match="not one string"):
        linker.link_many("Apple")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be strings"):
        linker.link_many(["Apple", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="twice"):
        EntityLinker([WatchEntity("AAPL", "Apple"), WatchEntity("$aapl", "Apple Computer")])
    with pytest.raises(ValueError, match="already a name of AAPL"):
        EntityLinker([WatchEntity("AAPL", "Apple Inc."), WatchEntity("APLE", "Apple Hospitality", ("Apple",))])
    with pytest.raises(ValueError, match="invalid symbol"):
        WatchEntity("NOT A SYMBOL", "x")
    with pytest.raises(ValueError, match="lacks 'name'"):
        WatchEntity.from_dict({"symbol": "AAPL"})


def test_watch_entity_normalises_its_fields():
    entity = WatchEntity.from_dict(
        {"symbol": " $aapl ", "name": " Apple Inc. ", "aliases": ["Apple", "Apple", " "], "exchange": "nasdaq"}
    )
    assert entity == WatchEntity("AAPL", "Apple Inc.", ("Apple",), "NASDAQ")
    assert WatchEntity.from_dict(entity.to_dict()) == entity


def test_demo_watchlist_links_every_labelled_headline_exactly():
    # Real finance headlines: the gold entities of each are exactly what gets linked.
    demo = EntityLinker(load_watchlist(DATA / "demo_watchlist.json"))
    assert len(demo.entities) >= 30
    rows = [json.loads(line) for line in (DATA / "multi_company_headlines.jsonl").read_text().splitlines()]
    assert len(rows) >= 60
    results = demo.analyse_many([row["text"] for row in rows])
    for row, found in zip(rows, results, strict=True):
        assert set(found.symbols) == set(row["entities"]), row["text"]
        assert set(row["entities"].values()) <= {"negative", "neutral", "positive"}
