"""Entity-level sentiment: clause splitting, target marking and per-entity scores."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ml.classify import Prediction
from ml.sentiment.entities import EntityLinker, WatchEntity
from ml.sentiment.targets import (
    entity_contexts,
    entity_inputs,
    entity_scores,
    entity_scores_many,
    split_clauses,
    target_marked,
    top_label,
)

POSITIVE = ("beats", "rallies", "rally", "rises", "upgraded", "jumps")
NEGATIVE = ("misses", "slips", "falls", "fall", "downgraded", "slumps")


@dataclass(frozen=True)
class M:
    symbol: str
    start: int
    end: int


def mentions_of(text: str, **names: str) -> list[M]:
    """Mentions of each ``symbol=name`` at every place the name occurs."""
    found = []
    for symbol, name in names.items():
        start = text.find(name)
        while start >= 0:
            found.append(M(symbol, start, start + len(name)))
            start = text.find(name, start + 1)
    return sorted(found, key=lambda m: m.start)


class KeywordPredict:
    """A deterministic scorer: positive / negative by keyword, neutral otherwise; records its calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[dict[str, float]]:
        self.calls.append(list(texts))
        out = []
        for text in texts:
            words = text.lower().replace(",", " ").split()
            pos, neg = sum(w in POSITIVE for w in words), sum(w in NEGATIVE for w in words)
            label = "positive" if pos > neg else "negative" if neg > pos else "neutral"
            out.append({lab: 0.8 if lab == label else 0.1 for lab in ("negative", "neutral", "positive")})
        return out


def clauses(text: str, **kwargs) -> list[str]:
    return [text[a:b] for a, b in split_clauses(text, **kwargs)]


def test_split_clauses_on_punctuation_and_connectives():
    assert clauses("Apple beats, Microsoft misses; Intel slips while Nvidia gains") == [
        "Apple beats",
        "Microsoft misses",
        "Intel slips",
        "Nvidia gains",
    ]
    assert clauses("Apple rises as iPhone sales beat but Intel falls - Cisco flat") == [
        "Apple rises",
        "iPhone sales beat",
        "Intel falls",
        "Cisco flat",
    ]
    assert clauses("Oil jumps whereas gas slides after OPEC meets. Banks rally") == [
        "Oil jumps",
        "gas slides",
        "OPEC meets",
        "Banks rally",
    ]


def test_split_clauses_leaves_numbers_prefixes_and_idioms_whole():
    assert clauses("Verizon lost 100,000 subscribers") == ["Verizon lost 100,000 subscribers"]
    assert clauses("NASDAQ:AAPL rises") == ["NASDAQ:AAPL rises"]
    assert clauses("Apple as well as Intel fell as much as 5%") == ["Apple as well as Intel fell as much as 5%"]
    assert clauses("Banks such as Citi rally") == ["Banks such as Citi rally"]
    assert clauses("") == [] and clauses(" , ") == []


def test_split_clauses_never_cuts_inside_a_protected_mention():
    text = "Merck & Co., Inc. rises, Pfizer falls"
    assert clauses(text) == ["Merck & Co.", "Inc. rises", "Pfizer falls"]  # no sentence end after "Inc."
    assert clauses(text, protected=[(0, 17)]) == ["Merck & Co., Inc. rises", "Pfizer falls"]


def test_each_entity_gets_its_own_clause():
    text = "Apple beats, Microsoft misses"
    contexts = entity_contexts(text, mentions_of(text, AAPL="Apple", MSFT="Microsoft"))
    assert {s: [text[a:b] for a, b in spans] for s, spans in contexts.items()} == {
        "AAPL": ["Apple beats"],
        "MSFT": ["Microsoft misses"],
    }


def test_contexts_group_clauses_around_mentions():
    def ctx(text: str, **names: str) -> dict[str, list[str]]:
        found = entity_contexts(text, mentions_of(text, **names))
        return {s: [text[a:b] for a, b in spans] for s, spans in found.items()}

    # a mention-free clause stays with the entity before it
    assert ctx("Apple rallies, lifting the Nasdaq, while Intel slips", AAPL="Apple", INTC="Intel") == {
        "AAPL": ["Apple rallies, lifting the Nasdaq"],
        "INTC": ["Intel slips"],
    }
    # a clause holding nothing but names joins the news after it ...
    assert ctx("Apple, Microsoft rally; Intel slips", AAPL="Apple", MSFT="Microsoft", INTC="Intel") == {
        "AAPL": ["Apple, Microsoft rally"],
        "MSFT": ["Apple, Microsoft rally"],
        "INTC": ["Intel slips"],
    }
    # ... or the list before it
    assert ctx("Investors pile into Apple and Microsoft as Intel slumps", AAPL="Apple", MSFT="Microsoft", INTC="Intel")[
        "MSFT"
    ] == ["Investors pile into Apple and Microsoft"]
    # news before the first mention is about something else
    assert ctx("Huawei gains as Apple drops, Intel steady", AAPL="Apple", INTC="Intel")["AAPL"] == ["Apple drops"]
    # one entity: the whole text, however many clauses
    assert ctx("Apple beats, shares slip", AAPL="Apple") == {"AAPL": ["Apple beats, shares slip"]}
    # an entity named in two clauses is scored on both
    assert ctx("Apple beats, Intel slips, Apple rallies", AAPL="Apple", INTC="Intel")["AAPL"] == [
        "Apple beats",
        "Apple rallies",
    ]


def test_entity_scores_give_each_entity_its_clause_score():
    text = "Apple beats on iPhone sales, Microsoft misses on cloud"
    mentions = mentions_of(text, AAPL="Apple", MSFT="Microsoft")
    predict = KeywordPredict()
    scores = entity_scores(text, mentions, predict)
    assert {s: top_label(p) for s, p in scores.items()} == {"AAPL": "positive", "MSFT": "negative"}
    assert scores["AAPL"] == pytest.approx({"negative": 0.1, "neutral": 0.1, "positive": 0.8})
    # the baseline copies the (tied, neutral) whole-text score to both
    whole = entity_scores(text, mentions, KeywordPredict(), "whole")
    assert {s: top_label(p) for s, p in whole.items()} == {"AAPL": "neutral", "MSFT": "neutral"}


def test_scores_of_several_clauses_are_averaged():
    text = "Apple beats, Intel slips, Apple falls"
    scores = entity_scores(text, mentions_of(text, AAPL="Apple", INTC="Intel"), KeywordPredict())
    assert scores["AAPL"] == pytest.approx({"negative": 0.45, "neutral": 0.1, "positive": 0.45})
    assert top_label(scores["INTC"]) == "negative"


def test_target_marking_marks_the_target_and_neutralises_the_others():
    text = "Apple upgraded, Microsoft downgraded; Apple's rival"
    mentions = mentions_of(text, AAPL="Apple", MSFT="Microsoft")
    assert target_marked(text, mentions, "AAPL") == "$TARGET upgraded, $OTHER downgraded; $TARGET's rival"
    assert entity_inputs(text, mentions, "target")["MSFT"] == ["$OTHER upgraded, $TARGET downgraded; $OTHER's rival"]

    def marker_predict(texts: list[str]) -> list[dict[str, float]]:
        # a "target-aware" model: reads the word right after the marker
        return [
            {"positive": float("$TARGET upgraded" in t), "negative": float("$TARGET downgraded" in t)} for t in texts
        ]

    scores = entity_scores(text, mentions, marker_predict, "target")
    assert {s: top_label(p) for s, p in scores.items()} == {"AAPL": "positive", "MSFT": "negative"}


def test_one_entity_is_scored_on_the_whole_text_by_every_method():
    text = "Apple beats, shares slip"
    for method in ("whole", "clause", "target"):
        assert entity_inputs(text, mentions_of(text, AAPL="Apple"), method) == {"AAPL": [text]}
    assert entity_scores(text, [], KeywordPredict()) == {}


def test_many_texts_share_one_predict_call_and_accept_predictions():
    texts = ["Apple beats, Microsoft misses", "Apple beats, Microsoft misses", "Intel slips"]
    mentions = [mentions_of(t, AAPL="Apple", MSFT="Microsoft", INTC="Intel") for t in texts]
    keyword = KeywordPredict()

    def as_predictions(batch: list[str]) -> list[Prediction]:
        return [Prediction(top_label(p), max(p.values()), p) for p in keyword(batch)]

    results = entity_scores_many(texts, mentions, as_predictions)
    assert keyword.calls == [["Apple beats", "Microsoft misses", "Intel slips"]]  # each distinct input once
    assert [{s: top_label(p) for s, p in r.items()} for r in results] == [
        {"AAPL": "positive", "MSFT": "negative"},
        {"AAPL": "positive", "MSFT": "negative"},
        {"INTC": "negative"},
    ]


def test_bad_input_gives_clear_errors():
    text = "Apple beats, Microsoft misses"
    mentions = mentions_of(text, AAPL="Apple", MSFT="Microsoft")
    with pytest.raises(ValueError, match="unknown method"):
        entity_scores(text, mentions, KeywordPredict(), "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside a text"):
        entity_scores(text, [M("AAPL", 0, 99)], KeywordPredict())
    with pytest.raises(ValueError, match="returned 1 results for 2 texts"):
        entity_scores(text, mentions, lambda texts: [{"positive": 1.0}])
    with pytest.raises(TypeError, match="mappings or Predictions"):
        entity_scores(text, mentions, lambda texts: ["positive" for _ in texts])
    with pytest.raises(ValueError, match="2 texts but 1 mention lists"):
        entity_scores_many([text, text], [mentions], KeywordPredict())


@pytest.fixture(scope="module")
def linker() -> EntityLinker:
    return EntityLinker(
        [
            WatchEntity("AAPL", "Apple Inc."),
            WatchEntity("MSFT", "Microsoft Corporation"),
            WatchEntity("INTC", "Intel Corporation"),
            WatchEntity("V", "Visa Inc."),
            WatchEntity("MA", "Mastercard Incorporated"),
            WatchEntity("AMZN", "Amazon.com Inc.", ("Amazon",)),
        ]
    )


def test_real_sentences_with_the_spacy_parse(linker):
    # "and" coordinating two names is not a boundary when the parser says so
    text = "Demand for Apple and Microsoft products soars as Intel slumps"
    found = linker.analyse(text, parse=True)
    with_parse = entity_inputs(text, found.mentions, doc=found.doc)
    assert with_parse == {
        "AAPL": ["Demand for Apple and Microsoft products soars"],
        "MSFT": ["Demand for Apple and Microsoft products soars"],
        "INTC": ["Intel slumps"],
    }
    assert entity_inputs(text, found.mentions)["AAPL"] == ["Demand for Apple"]  # regex alone cuts there
    # sentence boundaries from the parser, mentions linked by name and cashtag
    text = "Regulators fine Visa and Mastercard. $AMZN rallies after upbeat guidance"
    found = linker.analyse(text, parse=True)
    scores = entity_scores(text, found.mentions, KeywordPredict(), doc=found.doc)
    assert {s: top_label(p) for s, p in scores.items()} == {"V": "neutral", "MA": "neutral", "AMZN": "positive"}
    assert entity_inputs(text, found.mentions, doc=found.doc)["V"] == ["Regulators fine Visa and Mastercard"]
