"""Named entities with ticker linking: spaCy NER plus an entity ruler for companies.

``en_core_web_sm`` tags organisations well but reads tickers ("$AAPL") as anything from
MONEY to WORK_OF_ART. An ``entity_ruler`` placed before ``ner`` marks the known tickers
and company names first (the statistical NER keeps pre-set entities), and every entity
found either way is linked to its ticker where one is known.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import spacy
from spacy.pipeline import EntityRuler
from spacy.util import load_config

from ml.artifacts import Manifest
from ml.defaults import weights_dir

if TYPE_CHECKING:
    from ml.registry import Registry

TICKER_LABEL = "TICKER"  # a symbol such as "$AAPL" or "AAPL"
COMPANY_LABEL = "ORG"  # a company name; the same label spaCy's NER gives organisations
# Symbols that are also everyday upper-case words or abbreviations: these match only
# with the "$" cashtag, or every "A", "IT" or "CEO" in a headline would become a ticker.
AMBIGUOUS_SYMBOLS = frozenset(
    "A I IT ON ALL ARE NOW FOR BIG CAN ONE OUT SO YOU WELL GO CEO CFO USA US UK EU AI TV PM AM "
    "EPS IPO ETF GDP CPI FED SEC DD OR AN AT BE BY DO HE IF IN IS ME MY NO OF OK TO UP WE".split()
)
_SUFFIXES = re.compile(
    r"\b(inc|incorporated|corp|corporation|co|company|ltd|limited|plc|llc|group|holdings|sa|ag|nv)\b\.?"
)
_NON_WORD = re.compile(r"[^\w&]+")


def _normalise_name(name: str) -> str:
    """``"Apple Inc."`` -> ``"apple"``: the key NER-found organisations are linked by."""
    lowered = _SUFFIXES.sub(" ", name.lower().replace("'s", " "))
    lowered = lowered.removeprefix("the ")
    return " ".join(_NON_WORD.sub(" ", lowered).split())


@dataclass(frozen=True)
class Entity:
    """One entity mention.

    Attributes:
        text: the mention as written.
        label: spaCy label (ORG, PERSON, GPE, ...) or TICKER for a symbol.
        start: character offset where it starts in the text.
        end: character offset just past its end.
        ticker: the linked ticker, or None when the entity is not a known company.
    """

    text: str
    label: str
    start: int
    end: int
    ticker: str | None = None


class EntityExtractor:
    """spaCy NER with an entity ruler for tickers and company names.

    Only ``ner`` (which has its own tok2vec in ``en_core_web_sm``) and the ruler run; the
    tagger, parser and lemmatizer are not even loaded, which roughly triples throughput.

    Args:
        weights: a spaCy pipeline folder (with ``config.cfg``).
        companies: optional ticker -> names/aliases, as for ``add_patterns``.
    """

    def __init__(self, weights: Path | str, companies: Mapping[str, Sequence[str]] | None = None) -> None:
        weights = Path(weights)
        pipeline = list(load_config(weights / "config.cfg")["nlp"]["pipeline"])
        if "ner" not in pipeline:
            raise ValueError(f"the spaCy pipeline at {weights} has no 'ner' component")
        self.nlp = spacy.load(weights, exclude=[name for name in pipeline if name != "ner"])
        self.ruler = cast(EntityRuler, self.nlp.add_pipe("entity_ruler", before="ner", config={"validate": True}))
        self._aliases: dict[str, str] = {}  # normalised company name or symbol -> ticker
        self._lock = threading.Lock()  # patterns must not change under a running pipe
        if companies:
            self.add_patterns(companies)

    @property
    def tickers(self) -> set[str]:
        """The tickers patterns were added for."""
        return set(self._aliases.values())

    def add_patterns(self, companies: Mapping[str, Sequence[str]]) -> int:
        """Teaches the ruler tickers and their company names.

        For each ticker ``T``: the cashtag ``$T``; the bare upper-case token ``T`` (unless
        it is an everyday word, see AMBIGUOUS_SYMBOLS); each name, case-sensitively (so
        "Apple" links and "apple pie" does not). Calling again adds to what is known.

        Args:
            companies: ticker -> names/aliases, e.g. ``{"AAPL": ["Apple", "Apple Inc."]}``.

        Returns:
            How many patterns were added.
        """
        patterns: list[dict[str, object]] = []
        aliases: dict[str, str] = {}
        for raw_ticker, names in companies.items():
            ticker = raw_ticker.strip().lstrip("$").upper()
            if not ticker:
                raise ValueError("empty ticker in companies")
            if isinstance(names, str):
                names = [names]
            patterns.append({"label": TICKER_LABEL, "id": ticker, "pattern": [{"ORTH": "$"}, {"ORTH": ticker}]})
            if len(ticker) > 1 and ticker not in AMBIGUOUS_SYMBOLS:
                patterns.append({"label": TICKER_LABEL, "id": ticker, "pattern": [{"ORTH": ticker}]})
            aliases[ticker.lower()] = ticker
            for name in names:
                name = name.strip()
                if name:
                    patterns.append({"label": COMPANY_LABEL, "id": ticker, "pattern": name})
                    aliases[_normalise_name(name)] = ticker
        with self._lock:
            self.ruler.add_patterns(patterns)  # type: ignore[arg-type]
            self._aliases.update(aliases)
        return len(patterns)

    def extract(self, texts: Sequence[str], *, batch_size: int = 64) -> list[list[Entity]]:
        """Finds entities in each text.

        Args:
            texts: the texts.
            batch_size: documents per ``nlp.pipe`` batch (64 headlines is ~2 ms of NER
                per document either way; larger batches only raise peak memory).

        Returns:
            Per text, its entities in order of appearance.
        """
        if isinstance(texts, str):
            raise TypeError("extract() takes a sequence of texts, not one string")
        results: list[list[Entity]] = []
        with self._lock:
            for doc in self.nlp.pipe(texts, batch_size=batch_size):
                results.append([self._entity(ent) for ent in doc.ents])
        return results

    def _entity(self, ent: spacy.tokens.Span) -> Entity:
        ticker = ent.ent_id_ or None
        if ticker is None and ent.label_ == COMPANY_LABEL:
            ticker = self._aliases.get(_normalise_name(ent.text))
        return Entity(ent.text, ent.label_, ent.start_char, ent.end_char, ticker)


def load_ner(path: Path, manifest: Manifest, registry: Registry) -> EntityExtractor:
    """Registry loader for ``spacy`` artifacts.

    Args:
        path: the artifact directory.
        manifest: ``extra.weights_dir`` may point at the bundled pipeline;
            ``extra.companies`` (ticker -> names) seeds the ruler.
        registry: unused; part of the loader signature.

    Returns:
        The extractor.
    """
    del registry
    return EntityExtractor(weights_dir(path, manifest), companies=manifest.extra.get("companies"))
