"""Entity extraction: spaCy NER finds organisations; the ruler links tickers and names."""

from __future__ import annotations

import pytest

from ml.defaults import spacy_weights
from ml.entities import Entity, EntityExtractor, load_ner

COMPANIES = {"AAPL": ["Apple", "Apple Inc."], "MSFT": ["Microsoft"], "IT": ["Gartner"]}


@pytest.fixture(scope="module")
def extractor() -> EntityExtractor:
    # Its own instance: patterns added here must not leak into the registry's shared "ner".
    return EntityExtractor(spacy_weights(), companies=COMPANIES)


def test_registry_serves_the_bundled_pipeline(registry):
    ner = registry.get("ner")
    assert isinstance(ner, EntityExtractor)
    assert ner.nlp.pipe_names == ["entity_ruler", "ner"]  # tagger, parser, lemmatizer not loaded


def test_organisations_are_recognised(extractor):
    (ents,) = extractor.extract(["Goldman Sachs raised its price target on Tesla after the call."])
    orgs = {e.text for e in ents if e.label == "ORG"}
    assert "Goldman Sachs" in orgs


def test_cashtag_symbol_and_name_link_to_the_ticker(extractor):
    text = "$AAPL jumps after Apple beat estimates, while AAPL options traders pile in."
    (ents,) = extractor.extract([text])
    linked = [(e.text, e.ticker) for e in ents if e.ticker]
    assert linked == [("$AAPL", "AAPL"), ("Apple", "AAPL"), ("AAPL", "AAPL")]
    first = ents[0]
    assert isinstance(first, Entity) and first.label == "TICKER"
    assert text[first.start : first.end] == "$AAPL"


def test_ner_found_company_with_suffix_links_through_aliases(extractor):
    (ents,) = extractor.extract(["Shares of Microsoft Corporation rose 3% on Monday."])
    assert any(e.ticker == "MSFT" and e.label == "ORG" for e in ents)


def test_everyday_words_need_the_cashtag(extractor):
    # "IT" is also Gartner's ticker: the bare word must not link, the cashtag must
    (plain, cashtag) = extractor.extract(["IT spending grew this year.", "$IT fell 4% after Gartner cut guidance."])
    assert all(e.ticker != "IT" for e in plain)
    assert [(e.text, e.ticker) for e in cashtag if e.ticker] == [("$IT", "IT"), ("Gartner", "IT")]


def test_lowercase_common_noun_does_not_link(extractor):
    (ents,) = extractor.extract(["She ate an apple at lunch."])
    assert all(e.ticker is None for e in ents)


def test_batches_keep_one_result_per_text(extractor):
    texts = ["Microsoft hired.", "", "Nothing to see here", "$MSFT up"]
    results = extractor.extract(texts, batch_size=2)
    assert len(results) == 4
    assert results[1] == []
    assert [e.ticker for e in results[3]] == ["MSFT"]


def test_loader_seeds_companies_from_manifest(registry):
    active = registry.active("ner")
    manifest = active.manifest
    seeded = type(manifest)(**{**manifest.to_dict(), "extra": {**manifest.extra, "companies": {"TSLA": ["Tesla"]}}})
    ner = load_ner(active.path, seeded, registry)
    (ents,) = ner.extract(["Tesla and $TSLA"])
    assert [e.ticker for e in ents] == ["TSLA", "TSLA"]
