"""Watchlist entity linking for financial text: cashtags, exchange prefixes, symbols, names.

``EntityLinker`` runs spaCy ``en_core_web_sm`` (loaded once per process and shared by every
linker) with an ``entity_ruler`` built from the analyst's watchlist. The ruler runs before
the statistical NER, which keeps the spans the ruler set, so a watched company is never
split or relabelled. What the ruler links, by how it was written:

- ``cashtag``: ``$AAPL`` or ``$aapl`` (the symbol in upper or lower case, nothing mixed);
- ``exchange``: ``NASDAQ:AAPL``, ``NYSE: IBM``, ``LON:VOD`` (a known exchange code, see
  ``EXCHANGES``, or the entity's own ``exchange``);
- ``symbol``: the bare symbol, upper case only, at least two letters and not an everyday
  word or abbreviation (``STOP_SYMBOLS``: "IT", "ON", "ALL", "NOW", "CEO", ...);
- ``name`` / ``alias``: the company name or an alias, case-insensitively, with or without a
  corporate suffix ("Apple", "Apple Inc.", "APPLE", "Apple's"). A one-word name written all
  in lower case ("apple") links only when the whole text is lower case (a lower-cased tweet
  stream); in ordinary text it is the common noun.

Organisations spaCy's NER finds that are not on the watchlist are reported as
``unknown_orgs`` (for the analyst to add) and never linked. Changing the watchlist builds a
fresh ruler (milliseconds); the spaCy model is not reloaded.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import spacy
from spacy.language import Language
from spacy.pipeline import EntityRuler
from spacy.tokens import Doc

How = Literal["cashtag", "exchange", "symbol", "name", "alias"]
SYMBOL_LABEL = "TICKER"  # ruler label of cashtag / exchange / bare-symbol mentions
NAME_LABEL = "COMPANY"  # ruler label of name / alias mentions (spaCy's own stay "ORG")

# Bare upper-case symbols that are also everyday words or abbreviations in finance text.
# They link only as a cashtag or with an exchange prefix ("$IT", "NYSE:IT"), or every "IT",
# "ON" and "CEO" in a headline would become a ticker. Single letters ("C", "V", "T") never
# link bare. "HD" (video), "MA" (Massachusetts, moving average) and "MO" are here for the
# same reason.
STOP_SYMBOLS = frozenset(
    "AI ALL AM AN ANY ARE AT BE BIG BY CAN CEO CFO CPI DD DO EPS ETF EU FED FOR GDP GO HAS HD HE IF IN "
    "IPO IS IT KEY MA ME MO MY NEW NEXT NO NOW OF OK ON ONE OR OUT PM SEC SO TO TV UK UP US USA WE WELL "
    "YOU".split()
)
# Exchange codes accepted before a colon ("NASDAQ:AAPL"); an entity's own ``exchange`` is
# accepted as well. These are also never reported as unknown organisations.
EXCHANGES = frozenset(
    "NASDAQ NYSE NYSEARCA NYSEAMERICAN AMEX BATS CBOE OTC OTCMKTS LON LSE TSX TSXV ASX HKEX HKG ETR XETRA "
    "FRA EPA AMS EBR BIT BME SWX SIX TYO TSE KRX NSE BSE SGX JSE".split()
)
# Corporate suffixes: stripped from the end of names ("Apple Inc." -> "Apple") and matched
# optionally after any name, so "Apple", "Apple Inc." and "Apple, Inc." all link.
SUFFIXES = tuple(
    "inc inc. incorporated corp corp. corporation co co. company ltd ltd. limited plc p.l.c. llc sa s.a. ag nv "
    "n.v. se group holding holdings l.p. lp".split()
)
_SUFFIX_RE = re.compile(r"(?:[\s,]+(?:&\s*co\.?|" + "|".join(re.escape(s) for s in SUFFIXES) + r"))+\s*$", re.I)
_APOSTROPHE_S = ["'s", "’s"]
_NON_WORD = re.compile(r"[^\w&]+")
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,9}$")


def core_name(name: str) -> str:
    """``"The Walt Disney Company"`` -> ``"Walt Disney"``: the name without article and suffix."""
    core = re.sub(r"^the\s+", "", name.strip(), flags=re.I)
    stripped = _SUFFIX_RE.sub("", core).strip(" ,")
    return stripped or core  # "Company" alone stays itself


def normalise_name(name: str) -> str:
    """Lookup key of a name: core name, lower case, punctuation folded (``"Apple, Inc."`` -> ``"apple"``)."""
    return " ".join(_NON_WORD.sub(" ", core_name(name).lower().replace("’", "'").removesuffix("'s")).split())


@dataclass(frozen=True)
class WatchEntity:
    """One company on the watchlist.

    Attributes:
        symbol: the ticker, upper case ("AAPL", "BRK-A"); a leading "$" is dropped.
        name: the company name ("Apple Inc."); its suffix is optional when matching.
        aliases: other names it goes by ("iPhone maker", "Google" for Alphabet).
        exchange: where it is listed ("NASDAQ"), accepted as a prefix; optional.
    """

    symbol: str
    name: str
    aliases: tuple[str, ...] = ()
    exchange: str | None = None

    def __post_init__(self) -> None:
        symbol = str(self.symbol).strip().lstrip("$").upper()
        if not _SYMBOL_RE.match(symbol):
            raise ValueError(f"invalid symbol {self.symbol!r}: 1-10 letters, digits, '.' or '-'")
        name = str(self.name).strip()
        if not name:
            raise ValueError(f"entity {symbol} has an empty name")
        if isinstance(self.aliases, str):
            raise TypeError(f"aliases of {symbol} must be a list of names, not one string")
        aliases = tuple(dict.fromkeys(a.strip() for a in self.aliases if a and a.strip()))
        exchange = (self.exchange or "").strip().upper() or None
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "aliases", aliases)
        object.__setattr__(self, "exchange", exchange)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WatchEntity:
        """From ``{"symbol", "name", "aliases"?, "exchange"?}`` (the watchlist JSON)."""
        try:
            return cls(data["symbol"], data["name"], tuple(data.get("aliases") or ()), data.get("exchange"))
        except KeyError as exc:
            raise ValueError(f"watchlist entry {dict(data)!r} lacks {exc.args[0]!r}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "name": self.name, "aliases": list(self.aliases), "exchange": self.exchange}


def load_watchlist(path: Path | str) -> list[WatchEntity]:
    """Reads a JSON list of watchlist entries (see ``ml/sentiment/data/demo_watchlist.json``)."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise ValueError(f"{path}: a watchlist is a JSON list of entries")
    return [WatchEntity.from_dict(row) for row in rows]


@dataclass(frozen=True)
class Mention:
    """A watched entity mentioned in a text: ``text[start:end] == surface``."""

    symbol: str
    start: int
    end: int
    surface: str
    how: How

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "start": self.start, "end": self.end, "surface": self.surface, "how": self.how}


@dataclass(frozen=True)
class OrgMention:
    """An organisation spaCy found that is not on the watchlist (never linked)."""

    surface: str
    start: int
    end: int


@dataclass
class Linked:
    """What ``EntityLinker.analyse`` finds in one text.

    Attributes:
        mentions: watched entities, in order of appearance.
        unknown_orgs: organisations not on the watchlist, in order of appearance.
        doc: the spaCy doc (with a dependency parse when ``parse=True``), for
            ``ml.sentiment.targets``.
    """

    mentions: list[Mention]
    unknown_orgs: list[OrgMention] = field(default_factory=list)
    doc: Doc | None = None

    @property
    def symbols(self) -> list[str]:
        """Distinct linked symbols, in order of first mention."""
        return list(dict.fromkeys(m.symbol for m in self.mentions))


@dataclass(frozen=True)
class _Pipeline:
    """The loaded spaCy model, shared by every linker in the process."""

    nlp: Language
    host: Language  # a blank pipeline on the same vocab: rulers attach here, never to ``nlp``
    lock: threading.Lock

    def component(self, name: str) -> Any:
        return self.nlp.get_pipe(name) if name in self.nlp.pipe_names else None


_pipelines: dict[str, _Pipeline] = {}
_pipelines_lock = threading.Lock()


def shared_pipeline(weights: Path | str | None = None) -> _Pipeline:
    """Loads ``en_core_web_sm`` once per process (tokenizer, tok2vec + parser, NER).

    The tagger, attribute ruler and lemmatizer are not loaded: linking needs NER only
    (it has its own tok2vec), clause splitting the parser.
    """
    if weights is None:
        from ml.defaults import spacy_weights

        weights = spacy_weights()
    key = str(Path(weights).resolve())
    with _pipelines_lock:
        if key not in _pipelines:
            nlp = spacy.load(key, exclude=["tagger", "attribute_ruler", "lemmatizer", "senter"])
            if "ner" not in nlp.pipe_names:
                raise ValueError(f"the spaCy pipeline at {key} has no 'ner' component")
            _pipelines[key] = _Pipeline(nlp, spacy.blank("en", vocab=nlp.vocab), threading.Lock())
        return _pipelines[key]


@dataclass(frozen=True)
class _Compiled:
    entities: tuple[WatchEntity, ...]
    ruler: EntityRuler
    by_name: dict[str, tuple[str, How]]  # normalise_name(name) -> (symbol, how), for NER-found ORGs


class EntityLinker:
    """Links mentions of watchlist companies in texts; see the module docstring.

    Args:
        entities: the watchlist.
        weights: a spaCy pipeline folder; the bundled ``en_core_web_sm`` if None.
        stop_symbols: bare symbols never linked without "$" or an exchange prefix.
        exchanges: exchange codes accepted as prefixes.

    Raises:
        ValueError: two entries share a symbol, or a name or alias belongs to two symbols.
    """

    def __init__(
        self,
        entities: Iterable[WatchEntity],
        *,
        weights: Path | str | None = None,
        stop_symbols: Iterable[str] = STOP_SYMBOLS,
        exchanges: Iterable[str] = EXCHANGES,
    ) -> None:
        self._pipeline = shared_pipeline(weights)
        self.stop_symbols = frozenset(s.upper() for s in stop_symbols)
        self.exchanges = frozenset(e.upper() for e in exchanges)
        self._compiled = self._compile(tuple(entities))

    @property
    def entities(self) -> tuple[WatchEntity, ...]:
        return self._compiled.entities

    @property
    def nlp(self) -> Language:
        """The shared spaCy pipeline (the same object for every linker on the same weights)."""
        return self._pipeline.nlp

    @property
    def has_parser(self) -> bool:
        return self._pipeline.component("parser") is not None

    def set_entities(self, entities: Iterable[WatchEntity]) -> None:
        """Replaces the watchlist: a fresh ruler is built and swapped in (texts being linked finish on the old one)."""
        self._compiled = self._compile(tuple(entities))

    def link(self, text: str) -> list[Mention]:
        """Watched entities mentioned in ``text``, in order of appearance."""
        return self.analyse(text).mentions

    def link_many(self, texts: Sequence[str], *, batch_size: int = 64) -> list[list[Mention]]:
        """``link`` for many texts, through ``nlp.pipe`` in batches; one list per text."""
        return [linked.mentions for linked in self.analyse_many(texts, batch_size=batch_size)]

    def analyse(self, text: str, *, parse: bool = False) -> Linked:
        """Mentions, unknown organisations and the doc of one text."""
        if not isinstance(text, str):
            raise TypeError(f"analyse() takes a string, got {type(text).__name__}")
        return self.analyse_many([text], parse=parse)[0]

    def analyse_many(self, texts: Sequence[str], *, parse: bool = False, batch_size: int = 64) -> list[Linked]:
        """``analyse`` for many texts.

        Args:
            texts: the texts.
            parse: also run the dependency parser (``targets`` uses it to split clauses);
                it roughly doubles the time per text.
            batch_size: texts per spaCy batch (64 headlines: ~2 ms of NER each either way;
                larger batches only raise peak memory).

        Returns:
            One ``Linked`` per text, in input order.
        """
        if isinstance(texts, str):
            raise TypeError("analyse_many() takes a sequence of texts, not one string")
        bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
        if bad:
            raise TypeError(f"texts must be strings, got {bad[0]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        compiled = self._compiled  # one watchlist for the whole call, even if it is swapped meanwhile
        return [self._result(doc, compiled) for doc in self._docs(texts, compiled.ruler, parse, batch_size)]

    # -- internals --------------------------------------------------------------------

    def _docs(self, texts: Sequence[str], ruler: EntityRuler, parse: bool, batch_size: int) -> Iterator[Doc]:
        """tokenizer -> ruler -> ner (-> tok2vec -> parser), as ``nlp.pipe`` chains them."""
        nlp = self._pipeline.nlp
        docs: Iterator[Doc] = (ruler(nlp.make_doc(text)) for text in texts)
        for name in ("ner", "tok2vec", "parser") if parse else ("ner",):
            component: Any = self._pipeline.component(name)
            if component is not None:
                docs = component.pipe(docs, batch_size=batch_size)
        return docs

    def _result(self, doc: Doc, compiled: _Compiled) -> Linked:
        text = doc.text
        has_upper = any(c.isupper() for c in text)
        mentions: list[Mention] = []
        orgs: list[OrgMention] = []
        for ent in doc.ents:
            if ent.ent_id_:
                how, _, symbol = ent.ent_id_.partition(":")
                if how in ("name", "alias") and has_upper and ent.text.islower() and " " not in ent.text:
                    continue  # "apple" in mixed-case text is the fruit
                mentions.append(Mention(symbol, ent.start_char, ent.end_char, ent.text, how))  # type: ignore[arg-type]
            elif ent.label_ == "ORG":
                found = compiled.by_name.get(normalise_name(ent.text))
                if found is not None:
                    mentions.append(Mention(found[0], ent.start_char, ent.end_char, ent.text, found[1]))
                elif not self._not_a_company(ent.text):
                    orgs.append(OrgMention(ent.text, ent.start_char, ent.end_char))
        return Linked(mentions, orgs, doc)

    def _not_a_company(self, text: str) -> bool:
        """Exchanges and stop-listed abbreviations ("NASDAQ", "SEC", "CEO") NER calls ORG."""
        key = text.strip().lstrip("$").upper()
        return key in self.exchanges or key in self.stop_symbols or not any(c.isalpha() for c in key)

    def _compile(self, entities: tuple[WatchEntity, ...]) -> _Compiled:
        owners: dict[str, str] = {}
        by_name: dict[str, tuple[str, How]] = {}
        patterns: list[dict[str, Any]] = []
        tokenize = self._pipeline.nlp.tokenizer
        for entity in entities:
            if not isinstance(entity, WatchEntity):
                raise TypeError(f"watchlist entries must be WatchEntity, got {type(entity).__name__}")
            if entity.symbol in owners:
                raise ValueError(f"symbol {entity.symbol} is on the watchlist twice")
            owners[entity.symbol] = entity.symbol
            patterns += self._symbol_patterns(entity, [t.text for t in tokenize(entity.symbol)])
            names: list[tuple[str, How]] = [(entity.name, "name")]
            names += [(alias, "alias") for alias in entity.aliases]
            for name, how in names:
                key = normalise_name(name)
                if not key:
                    continue
                owner = owners.setdefault(f"name:{key}", entity.symbol)
                if owner != entity.symbol:
                    raise ValueError(f"name {name!r} of {entity.symbol} is already a name of {owner}")
                if key in by_name:
                    continue  # the name and an alias with the same core ("Apple", "Apple Inc.")
                by_name[key] = (entity.symbol, how)
                patterns += _name_patterns(entity.symbol, how, [t.text for t in tokenize(core_name(name))])
        with self._pipeline.lock:  # the ruler constructor and add_patterns touch the shared vocab
            ruler = EntityRuler(self._pipeline.host, name="watchlist", validate=True)
            ruler.add_patterns(patterns)
        return _Compiled(entities, ruler, by_name)

    def _symbol_patterns(self, entity: WatchEntity, tokens: list[str]) -> list[dict[str, Any]]:
        either_case = [{"ORTH": {"IN": list(dict.fromkeys([t, t.lower()]))}} for t in tokens]
        exchanges = sorted(self.exchanges | ({entity.exchange} if entity.exchange else set()))
        patterns: list[dict[str, Any]] = [
            _pattern(SYMBOL_LABEL, "cashtag", entity.symbol, [{"ORTH": "$"}, *either_case]),
            _pattern(
                SYMBOL_LABEL,
                "exchange",
                entity.symbol,
                [{"LOWER": {"IN": [e.lower() for e in exchanges]}}, {"ORTH": ":"}, *either_case],
            ),
        ]
        letters = sum(c.isalpha() for c in entity.symbol)
        if letters >= 2 and entity.symbol not in self.stop_symbols:
            patterns.append(_pattern(SYMBOL_LABEL, "symbol", entity.symbol, [{"ORTH": t} for t in tokens]))
        return patterns


def _pattern(label: str, how: How, symbol: str, tokens: list[dict[str, Any]]) -> dict[str, Any]:
    # The ruler keeps (label, id) per match; the id carries how it matched and the symbol.
    return {"label": label, "id": f"{how}:{symbol}", "pattern": tokens}


def _name_patterns(symbol: str, how: How, tokens: list[str]) -> list[dict[str, Any]]:
    """The name case-insensitively, bare or followed by a corporate suffix ("Inc.", ", Inc", "& Co.")."""
    if not tokens:
        return []
    core: list[dict[str, Any]] = [
        {"LOWER": {"IN": _APOSTROPHE_S}} if t.lower() in _APOSTROPHE_S else {"LOWER": t.lower()} for t in tokens
    ]
    comma: dict[str, Any] = {"ORTH": ",", "OP": "?"}
    return [
        _pattern(NAME_LABEL, how, symbol, core),
        _pattern(NAME_LABEL, how, symbol, [*core, comma, {"LOWER": {"IN": list(SUFFIXES)}}]),
        _pattern(NAME_LABEL, how, symbol, [*core, {"ORTH": "&"}, {"LOWER": {"IN": ["co", "co."]}}]),
    ]
