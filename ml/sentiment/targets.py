"""Entity-level sentiment: each watched entity in a text gets its own score.

"Apple beats, Microsoft misses" is one headline with two opposite pieces of news. A
sentence classifier scores it once; here each entity is scored on its own input:

- ``clause`` (default): the clause around the entity's mentions. The text is cut at clause
  boundaries (",", ";", ": ", " - ", sentence ends, and the connectives "while", "but",
  "as", "whereas", "after", "and", "amid", "despite", ...), never inside a mention. A
  clause without a mention belongs to the entity before it ("Apple rallies, lifting the
  Nasdaq, while ..."); a clause with nothing but mentions and filler words joins the next
  one ("Apple, Microsoft rally" stays whole), or the one before when that ends in a mention
  ("Investors pile into Apple and Microsoft as ..."); clauses before the first mention ("Huawei
  gains share as Apple's shipments drop") are about something else and are left out. With
  a dependency parse, "and" joining two entity names ("Shares of Apple and Microsoft
  fall") is not a boundary, and sentence boundaries come from the parser.
- ``target``: the whole text with the entity's mentions replaced by ``TARGET_MARKER`` and
  the other entities' by ``OTHER_MARKER``, for a model trained on such inputs.
- ``whole``: the whole text for every entity (the baseline).

A text naming one entity is always scored whole. The scorer is any callable
``texts -> list`` of probability dicts (or of ``ml.classify.Prediction``, whose ``probs``
are used), so every model version works unchanged. Typical use, one batch of documents:

    found = linker.analyse_many(texts, parse=True)       # ml.sentiment.entities.EntityLinker
    per_doc = entity_scores_many(texts, [f.mentions for f in found], model.predict,
                                 docs=[f.doc for f in found])   # [{symbol: {label: p}}, ...]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from spacy.tokens import Doc

Method = Literal["whole", "clause", "target"]
METHODS: tuple[Method, ...] = ("whole", "clause", "target")
Probs = dict[str, float]
Predict = Callable[[list[str]], Sequence[Any]]

TARGET_MARKER = "$TARGET"
OTHER_MARKER = "$OTHER"

# Punctuation boundaries: ", " and "; " (not "1,000"), ": " (not "NASDAQ:AAPL"), a spaced dash,
# and a sentence end after a lower-case letter, digit, "%" or ")" (not "U.S. Steel"), unless
# the word is an abbreviation ("Inc. rises", "Co. says", "vs. rivals").
_ABBREVIATIONS = "".join(
    rf"(?<!\b{a})" for a in "Inc Corp Co Ltd Bros Cos vs Mr Mrs Ms Dr Jr Sr St No est approx".split()
)
_PUNCT_CUT = re.compile(rf"\s*(?:[,;](?=\s|$)|:(?=\s)|\s[-–—]+(?=\s)|(?<=[a-z0-9%)]){_ABBREVIATIONS}[.!?]+(?=\s))\s*")
_WORD_CUT = re.compile(r"\s+(while|whilst|but|whereas|after|as|and|amid|despite|although|though|yet)\s+", re.IGNORECASE)
# "as" in "such as", "as well as", "as much as", "as long as" is no clause boundary.
_AS_BEFORE = frozenset("such well much many long soon far same so just".split())
_AS_AFTER = frozenset("well much many long soon far high low part a an the".split())
# Words that carry no news of their own: a clause with only these beside its mentions
# ("Shares of Apple", "Apple") is joined to a neighbour (see ``entity_contexts``).
_FILLER = frozenset("a an the of in on at for to and & or its their shares share stock stocks s".split())
_WORD = re.compile(r"[A-Za-z0-9%]+")


class SpanLike(Protocol):
    """What ``targets`` reads of a mention (``ml.sentiment.entities.Mention`` fits)."""

    symbol: str
    start: int
    end: int


def split_clauses(
    text: str, *, protected: Sequence[tuple[int, int]] = (), doc: Doc | None = None
) -> list[tuple[int, int]]:
    """Cuts ``text`` into clauses.

    Args:
        text: the text.
        protected: ``(start, end)`` character spans never cut (the entity mentions).
        doc: the spaCy doc of ``text``; with a dependency parse it adds sentence boundaries
            and keeps "and" between two protected spans it coordinates.

    Returns:
        ``(start, end)`` of each clause in order, whitespace trimmed; ``[(0, len)]`` stripped
        when nothing cuts it, ``[]`` for a blank text.
    """
    parsed = doc is not None and doc.has_annotation("DEP") and doc.text == text
    cuts: list[tuple[int, int]] = [(m.start(), m.end()) for m in _PUNCT_CUT.finditer(text)]
    for m in _WORD_CUT.finditer(text):
        word = m.group(1).lower()
        if word == "as" and _as_is_not_a_boundary(text, m):
            continue
        if word == "and" and parsed and _coordinates_protected(doc, m.start(1), protected):  # type: ignore[arg-type]
            continue
        cuts.append((m.start(), m.end()))
    if parsed:
        cuts += [(s.start_char, s.start_char) for s in doc.sents if s.start_char > 0]  # type: ignore[union-attr]
    # a cut touching a mention's inside is dropped (zero-width cuts too: a < start < b)
    cuts = sorted(c for c in cuts if not any(a < c[1] and c[0] < b or a < c[0] < b for a, b in protected))
    segments: list[tuple[int, int]] = []
    position = 0
    for start, end in cuts + [(len(text), len(text))]:
        if start >= position:
            segments.append((position, start))
        position = max(position, end)
    return [trimmed for s, e in segments if (trimmed := _trim(text, s, e)) is not None]


def entity_contexts(
    text: str, mentions: Sequence[SpanLike], *, doc: Doc | None = None
) -> dict[str, list[tuple[int, int]]]:
    """The clause(s) around each entity's mentions (see the module docstring).

    Args:
        text: the text.
        mentions: the linked mentions in ``text``.
        doc: its spaCy doc, for the parse (optional).

    Returns:
        symbol -> ``(start, end)`` spans to score, in order; one span covering the whole
        text when ``text`` names fewer than two entities.
    """
    _check_mentions(text, mentions)
    symbols = list(dict.fromkeys(m.symbol for m in mentions))
    if len(symbols) < 2:
        return {symbol: [(0, len(text))] for symbol in symbols}
    spans = [(m.start, m.end) for m in mentions]
    groups: list[list[Any]] = []  # [start, end, symbols in it]
    for start, end in split_clauses(text, protected=spans, doc=doc):
        inside = {m.symbol for m in mentions if start <= m.start < end}
        if not groups or inside:
            groups.append([start, end, inside])
        else:  # a clause without mentions belongs to the entity before it
            groups[-1][1] = end
    merged = True
    ends = {end for _, end in spans}
    while merged and len(groups) > 1:  # fold mention-only clauses into a neighbour
        merged = False
        for i, (start, end, _) in enumerate(groups):
            if not _has_news(text, start, end, spans):
                # A list goes on ("... into Apple and Microsoft as ...") when the clause before
                # ends in a mention; otherwise the clause joins the news after it ("Apple, Microsoft rally").
                follows_list = i > 0 and groups[i - 1][1] in ends
                j = i - 1 if follows_list or i + 1 == len(groups) else i + 1
                lo, hi = sorted((i, j))
                groups[lo : hi + 1] = [[groups[lo][0], groups[hi][1], groups[lo][2] | groups[hi][2]]]
                merged = True
                break
    contexts: dict[str, list[tuple[int, int]]] = {symbol: [] for symbol in symbols}
    for start, end, inside in groups:
        for symbol in inside:
            contexts[symbol].append((start, end))
    return {s: spans_ or [(0, len(text))] for s, spans_ in contexts.items()}


def target_marked(
    text: str,
    mentions: Sequence[SpanLike],
    symbol: str,
    *,
    target_marker: str = TARGET_MARKER,
    other_marker: str = OTHER_MARKER,
) -> str:
    """``text`` with ``symbol``'s mentions replaced by ``target_marker``, the others' by ``other_marker``."""
    _check_mentions(text, mentions)
    out: list[str] = []
    position = 0
    for m in sorted(mentions, key=lambda m: m.start):
        if m.start < position:
            continue  # overlapping mentions: the first one wins
        out += [text[position : m.start], target_marker if m.symbol == symbol else other_marker]
        position = m.end
    out.append(text[position:])
    return "".join(out)


def entity_inputs(
    text: str, mentions: Sequence[SpanLike], method: Method = "clause", *, doc: Doc | None = None
) -> dict[str, list[str]]:
    """symbol -> the texts its score is the mean of, for ``method``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    _check_mentions(text, mentions)
    symbols = list(dict.fromkeys(m.symbol for m in mentions))
    if method == "whole" or len(symbols) < 2:
        return {symbol: [text] for symbol in symbols}
    if method == "target":
        return {symbol: [target_marked(text, mentions, symbol)] for symbol in symbols}
    return {s: [text[a:b] for a, b in spans] for s, spans in entity_contexts(text, mentions, doc=doc).items()}


def entity_scores(
    text: str,
    mentions: Sequence[SpanLike],
    predict: Predict,
    method: Method = "clause",
    *,
    doc: Doc | None = None,
) -> dict[str, Probs]:
    """Per-entity label probabilities for one text.

    Args:
        text: the text.
        mentions: its linked mentions (``EntityLinker.link``).
        predict: ``texts -> list`` of ``{label: probability}`` (or of ``Prediction``).
        method: ``clause``, ``target`` or ``whole``.
        doc: its spaCy doc with a parse (``EntityLinker.analyse(text, parse=True).doc``).

    Returns:
        symbol -> ``{label: probability}``; ``{}`` when nothing is mentioned.
    """
    return entity_scores_many([text], [mentions], predict, method, docs=[doc])[0]


def entity_scores_many(
    texts: Sequence[str],
    mentions: Sequence[Sequence[SpanLike]],
    predict: Predict,
    method: Method = "clause",
    *,
    docs: Sequence[Doc | None] | None = None,
) -> list[dict[str, Probs]]:
    """``entity_scores`` for many texts with one ``predict`` call (each distinct input once).

    Raises:
        ValueError: lengths differ, a mention lies outside its text, or ``predict`` returns
            the wrong number of results.
        TypeError: ``predict`` returns something that is neither a mapping nor has ``probs``.
    """
    if isinstance(texts, str):
        raise TypeError("entity_scores_many() takes a sequence of texts, not one string")
    if len(mentions) != len(texts) or (docs is not None and len(docs) != len(texts)):
        raise ValueError(f"{len(texts)} texts but {len(mentions)} mention lists / {len(docs or [])} docs")
    plans = [
        entity_inputs(text, ms, method, doc=docs[i] if docs else None)
        for i, (text, ms) in enumerate(zip(texts, mentions, strict=True))
    ]
    unique = list(dict.fromkeys(t for plan in plans for inputs in plan.values() for t in inputs))
    if not unique:
        return [{} for _ in texts]
    results = list(predict(unique))
    if len(results) != len(unique):
        raise ValueError(f"predict returned {len(results)} results for {len(unique)} texts")
    scored = {t: _as_probs(r) for t, r in zip(unique, results, strict=True)}
    return [{symbol: _mean([scored[t] for t in inputs]) for symbol, inputs in plan.items()} for plan in plans]


def top_label(probs: Mapping[str, float]) -> str:
    """The most probable label (ties: the first in the mapping)."""
    return max(probs, key=lambda label: probs[label])


# -- internals ------------------------------------------------------------------------


def _check_mentions(text: str, mentions: Sequence[SpanLike]) -> None:
    for m in mentions:
        if not 0 <= m.start < m.end <= len(text):
            raise ValueError(f"mention {m.symbol} at {m.start}:{m.end} lies outside a text of {len(text)} characters")


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and not text[start].isalnum() and text[start] not in "$(\"'":
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if any(c.isalnum() for c in text[start:end]) else None


def _as_is_not_a_boundary(text: str, match: re.Match[str]) -> bool:
    before = re.findall(r"[A-Za-z]+", text[: match.start()])
    after = re.match(r"[A-Za-z]+", text[match.end() :])
    return bool(before and before[-1].lower() in _AS_BEFORE) or bool(after and after.group().lower() in _AS_AFTER)


def _coordinates_protected(doc: Doc, char: int, protected: Sequence[tuple[int, int]]) -> bool:
    """Is the "and" at ``char`` a cc joining two protected spans ("Apple and Microsoft fall")?"""
    token = doc.char_span(char, char + 3)
    if token is None or token[0].dep_ != "cc":
        return False

    def in_protected(t: Any) -> bool:
        return any(a <= t.idx < b for a, b in protected)

    head = token[0].head
    return in_protected(head) and any(c.dep_ == "conj" and in_protected(c) for c in head.children)


def _has_news(text: str, start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    chars = list(text[start:end])
    for a, b in spans:
        for i in range(max(a, start), min(b, end)):
            chars[i - start] = " "
    return any(w.lower() not in _FILLER for w in _WORD.findall("".join(chars)))


def _as_probs(result: Any) -> Probs:
    probs = result if isinstance(result, Mapping) else getattr(result, "probs", None)
    if not isinstance(probs, Mapping):
        raise TypeError(f"predict must return label->probability mappings or Predictions, got {type(result).__name__}")
    return {str(label): float(p) for label, p in probs.items()}


def _mean(rows: Sequence[Probs]) -> Probs:
    if len(rows) == 1:
        return dict(rows[0])
    labels = list(dict.fromkeys(label for row in rows for label in row))
    return {label: sum(row.get(label, 0.0) for row in rows) / len(rows) for label in labels}
