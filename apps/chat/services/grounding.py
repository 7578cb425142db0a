"""Is a generated reply backed by the KB passages it was given, and the extractive fallback.

``grounding_check`` splits the reply into sentences and gives each its best cosine similarity
to the passages' sentences (or two neighbouring ones), with the embedder passed in (the
``embedder`` model from ``model_get``). A reply is grounded when every sentence that says
something has a support (cosine, less a penalty for words the passages never use) of at least
``SENTENCE_MIN``, and every number, amount or duration in it also appears in the passages.
Refusals ("I'm unable to provide assistance") and empty replies are never grounded: the
pipeline then answers with ``extractive_answer``, the passage sentences that best answer the
question, in their order.

Thresholds were chosen on the ABCD policies with the bundled MiniLM, on the hand-written
replies in ``tests/chat/grounding_cases.py`` (see ``SENTENCE_MIN``).

The embedder runs torch: from async code call these through the compute lane.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

# A sentence's support = its best cosine to a passage sentence (or two neighbouring ones)
# minus NOVEL_PENALTY x the share of its content words the passages never use. Chosen on
# tests/chat/grounding_cases.py with the bundled MiniLM: grounded sentences' support >= 0.535,
# invented ones on the passage's topic <= 0.508 ("Gold members get free overnight shipping"
# against the returns policy: cosine 0.637, 3 of 7 words new). Cosine alone separated them by
# only 0.018 (0.655 vs 0.637); the penalty widens the gap. Missing the threshold costs little
# (the extractive answer is used instead); passing an invented reply costs trust.
SENTENCE_MIN = 0.52  # support every substantive reply sentence must reach
NOVEL_PENALTY = 0.3
MIN_WORDS = 4  # shorter sentences ("Happy to help!") are not judged, unless they hold a number
EXTRACT_TOP_PASSAGES = 3  # extractive answers read the first passages only (ranked by retrieval)
EXTRACT_OVERLAP_WEIGHT = 0.3  # weight of word overlap with the question next to the cosine
EXTRACT_KEEP_WITHIN = 0.06  # a second/third sentence joins the answer if it scores this close to the best
EXTRACT_MIN_WORDS = 6  # shorter passage sentences are labels or UI steps ("Click on Promo Code."), not answers
# Section names that chunking leaves glued to the next sentence ("Overview Help the customer").
GENERIC_HEADINGS = ("Overview", "Steps", "Summary", "Details", "Introduction", "Notes", "Required actions", "FAQ")
EXTRACT_RANK_PENALTY = 0.03  # per passage rank: prefer the best-retrieved passage on near ties


class SupportsEmbed(Protocol):
    def embed(self, texts: list[str], *, batch_size: int = ...) -> np.ndarray: ...


class PassageLike(Protocol):
    """What is read of ``apps.chat.services.index.Passage``."""

    text: str
    heading: str
    article_title: str


@dataclass(frozen=True)
class GroundingResult:
    grounded: bool
    score: float  # the lowest sentence support, what decides (0 when nothing was judged)
    sentence_scores: list[float] = field(default_factory=list)  # each judged sentence's best cosine
    reason: str = ""  # why not grounded: empty, refusal, numbers, similarity
    unsupported_numbers: list[str] = field(default_factory=list)


_REFUSAL = re.compile(
    r"\b(?:i\s*(?:'m|am)\s+(?:unable|not\s+able|not\s+allowed|sorry,?\s+but\s+i\s+(?:can(?:'|no)t|am\s+unable))"
    r"|i\s+(?:can(?:'|no)?t|could\s*n[o']?t|won'?t)\s+(?:help|assist|provide|answer|do\s+that|share|access)"
    r"|unable\s+to\s+(?:provide|assist|help|answer)|as\s+an\s+ai\b|i\s+(?:do\s*n[o']?t|don't)\s+(?:have|know)"
    r"|i\s*(?:'m|am)\s+(?:not\s+sure|an?\s+(?:ai|language\s+model)))",
    re.IGNORECASE,
)
_COURTESY = re.compile(
    r"^(?:i\s+hope\s+this\s+helps|let\s+me\s+know|happy\s+to\s+help|thank|is\s+there\s+anything\s+else|"
    r"feel\s+free|have\s+a\s+(?:great|nice|good)|glad\s+to\s+help|you'?re\s+welcome)",
    re.IGNORECASE,
)
_ABBREVIATIONS = frozenset("e.g i.e etc mr mrs ms dr vs st no approx incl".split())
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9$])")
_LIST_MARK = re.compile(r"(?:^|\s)(?:[-*+•]|\d{1,2}[.)])\s+(?=\S)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_)(?=\S)(.+?)(?<=\S)\1")
_BUTTON_AT_END = re.compile(r"\s*\((?:[A-Z][\w'-]*\s?){1,4}\)\s*\.?$")  # "... address. (Record Reason)"
_LEADS_INTO_LIST = re.compile(r"(?::|\b(?:are|is|include|includes|following|follows|such as))\s*[.]?$", re.IGNORECASE)
_HEADING = re.compile(r"^\s*#{1,6}\s+.*$", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOPWORDS = frozenset(
    """a an the and or but if of to in on at for with by from as is are was were be been being am do does did
    i me my we our you your he she it its they them their this that these those what which who whom how when
    where why can could would should will shall may might must have has had not no so than then there here
    about into out up down over under again any all some more most other such only own same too very just
    get got please hi hello thanks thank want need like know i'm im i've i'd don't can't doesn't""".split()
)
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fifteen": "15",
    "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "ninety": "90",
    "hundred": "100", "once": "1", "twice": "2", "single": "1", "half": "0.5",
}  # fmt: skip
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)


def _clean(unit: str) -> str:
    """A passage or reply fragment as readable text: Markdown marks and the KB's '>' arrows out."""
    text = _EMPHASIS.sub(r"\2", unit)
    text = text.replace("<or>", "or").replace("<and>", "and")
    text = re.sub(r"\s*:\s*>\s*", ": ", text)
    text = re.sub(r"\s+>\s+", "; ", text)
    text = re.sub(r"^[\s>*#-]+", "", text)
    text = re.sub(r"\(\s*\)", "", text)
    return " ".join(text.split()).strip()


def _split_sentences(text: str) -> list[str]:
    """Sentences at '.', '!' or '?' followed by a capital, except after abbreviations."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start()].split()
        last = before[-1].lower().rstrip(".") if before else ""
        if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
            continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def text_units(text: str) -> list[str]:
    """``text`` (a passage or a reply; Markdown lists may be flattened to one line) as
    sentence-sized units: list items and sentences, cleaned, in order."""
    text = _HEADING.sub("", text)
    pieces: list[str] = []
    for line in text.splitlines():
        items = [p for p in _LIST_MARK.split(line) if p.strip()]
        for item in items:
            # "Username - occasionally, ..." was split at its dash: a lower-case start continues.
            if pieces and item.strip()[:1].islower() and not pieces[-1].rstrip().endswith((".", "!", "?")):
                pieces[-1] = f"{pieces[-1]} - {item.strip()}"
            else:
                pieces.append(item)
    units = []
    for piece in pieces:
        for sentence in _split_sentences(piece):
            cleaned = _clean(sentence)
            if cleaned and re.search(r"[A-Za-z0-9]", cleaned):
                units.append(cleaned)
    return units


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_stems(text: str) -> set[str]:
    """The stemmed content words of ``text`` (stopwords and one-letter words out)."""
    return {_stem(w) for w in _words(text) if w not in _STOPWORDS and len(w) > 1}


def _numbers(text: str) -> set[str]:
    found = set()
    for raw in _NUMBER.findall(text):
        value = _NUMBER_WORDS.get(raw.lower(), raw.replace(",", ""))
        if re.fullmatch(r"\d+\.0+", value):
            value = value.split(".")[0]
        found.add(value)
    return found


def _judged(sentence: str) -> bool:
    """Whether a reply sentence makes a claim worth checking (not "Happy to help!")."""
    if _COURTESY.match(sentence):
        return bool(_numbers(sentence))
    return len(_words(sentence)) >= MIN_WORDS or bool(_numbers(sentence))


class _PassageVectors:
    """Embeddings of passage sentences, kept between calls: the KB repeats, replies do not.

    Keyed by text for one embedder object; a new embedder (a promoted model) starts afresh.
    ``MAX_TEXTS`` x 384 floats is ~6 MB with MiniLM.
    """

    MAX_TEXTS = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._embedder: object | None = None
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, texts: list[str], embedder: SupportsEmbed) -> np.ndarray:
        with self._lock:
            if embedder is not self._embedder:
                self._embedder, self._vectors = embedder, OrderedDict()
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            fresh = np.asarray(embedder.embed(missing), dtype=np.float32)
            with self._lock:
                if embedder is self._embedder:
                    self._vectors.update(zip(missing, fresh, strict=True))
                    while len(self._vectors) > self.MAX_TEXTS:
                        self._vectors.popitem(last=False)
            known = dict(zip(missing, fresh, strict=True))
        else:
            known = {}
        with self._lock:
            rows = [known[t] if t in known else self._vectors[t] for t in texts]
            for text in texts:
                if text in self._vectors:
                    self._vectors.move_to_end(text)
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


passage_vectors = _PassageVectors()


def _passage_texts(passages: Sequence[PassageLike]) -> list[str]:
    return [p.text for p in passages if p.text and p.text.strip()]


def is_refusal(reply: str) -> bool:
    """ "I'm unable to provide assistance with refunds", "As an AI ...", "I don't know"."""
    return bool(_REFUSAL.search(reply))


def grounding_check(reply: str, passages: Sequence[PassageLike], *, embedder: SupportsEmbed) -> GroundingResult:
    """Whether ``reply`` says only what ``passages`` say (see the module docstring)."""
    sentences = [s for s in text_units(reply or "") if _judged(s)]
    if not sentences:
        return GroundingResult(False, 0.0, [], "empty")
    if is_refusal(reply):
        return GroundingResult(False, 0.0, [], "refusal")
    texts = _passage_texts(passages)
    if not texts:
        return GroundingResult(False, 0.0, [], "empty")
    units = [u for t in texts for u in text_units(t)]  # list markers ("2. ") are not numbers
    context = units + [f"{p.article_title} {p.heading}" for p in passages]
    passage_numbers = set().union(*(_numbers(u) for u in context))
    missing = sorted(set().union(*(_numbers(s) for s in sentences)) - passage_numbers)
    passage_words = set().union(*(content_stems(u) for u in context))
    # Each passage sentence, and each pair of neighbours (a reply sentence may join two).
    references = units + [f"{a} {b}" for t in texts for a, b in itertools.pairwise(text_units(t))]
    reply_vectors = np.asarray(embedder.embed(sentences), dtype=np.float32)
    similarity = reply_vectors @ passage_vectors.get(references, embedder).T
    scores = [round(float(s), 4) for s in similarity.max(axis=1)]
    support = []
    for sentence, cosine in zip(sentences, scores, strict=True):
        words = content_stems(sentence)
        novel = len(words - passage_words) / len(words) if words else 0.0
        support.append(cosine - NOVEL_PENALTY * novel)
    lowest = round(min(support), 4)
    if missing:
        return GroundingResult(False, lowest, scores, "numbers", missing)
    if lowest < SENTENCE_MIN:
        return GroundingResult(False, lowest, scores, "similarity")
    return GroundingResult(True, lowest, scores)


def _without_heading(unit: str, headings: Sequence[str]) -> str:
    """``"Overview Help the customer"`` -> ``"Help the customer"`` (a flattened heading removed)."""
    for heading in headings:
        if heading and unit.startswith(heading + " ") and unit[len(heading) + 1 : len(heading) + 2].isupper():
            return unit[len(heading) + 1 :]
    return unit


def _readable(unit: str) -> bool:
    words = unit.split()
    if len(words) < EXTRACT_MIN_WORDS or _LEADS_INTO_LIST.search(unit):
        return False  # a heading fragment or a lone label ("Email Address")
    hyphenated = sum(1 for w in words if re.fullmatch(r"[a-z]+(?:-[a-z]+)+[,.]?", w))
    return hyphenated * 2 < len(words)  # not an action list such as "pull-up-account, ..."


def _as_sentence(unit: str) -> str:
    unit = unit.rstrip(" :;,-")
    unit = unit[0].upper() + unit[1:]
    return unit if unit.endswith((".", "!", "?")) else unit + "."


def extractive_answer(
    question: str, passages: Sequence[PassageLike], *, embedder: SupportsEmbed, max_sentences: int = 3
) -> str:
    """The passage sentences that best answer ``question``, in their original order.

    Candidates are the readable sentences of the first ``EXTRACT_TOP_PASSAGES`` passages (no
    headings, no lone labels, no sentence cut at the start of a passage window); each is scored
    by its cosine to the question plus its share of the question's content words. The best one
    is always kept; up to ``max_sentences - 1`` more join it when they score nearly as well.
    Returns "" when there is nothing to extract.
    """
    candidates: list[tuple[int, int, str]] = []  # (passage rank, position, sentence)
    seen: set[str] = set()
    for rank, passage in enumerate(passages[:EXTRACT_TOP_PASSAGES]):
        headings = sorted(
            {*(h.strip() for h in (passage.heading or "").split(">")), *GENERIC_HEADINGS}, key=len, reverse=True
        )
        for position, raw in enumerate(text_units(passage.text or "")):
            if position == 0 and raw[:1].islower():
                continue  # the window starts mid-sentence
            unit = _BUTTON_AT_END.sub("", _without_heading(raw, headings))
            key = " ".join(_words(unit))
            if _readable(unit) and key not in seen:
                seen.add(key)
                candidates.append((rank, position, unit))
    if not candidates or max_sentences < 1:
        return ""
    question_vector = np.asarray(embedder.embed([question]), dtype=np.float32)[0]
    cosines = passage_vectors.get([c[2] for c in candidates], embedder) @ question_vector
    asked = content_stems(question)
    scores = []
    for (rank, _, unit), cosine in zip(candidates, cosines, strict=True):
        overlap = len(asked & content_stems(unit)) / len(asked) if asked else 0.0
        scores.append(float(cosine) + EXTRACT_OVERLAP_WEIGHT * overlap - EXTRACT_RANK_PENALTY * rank)
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    best = scores[order[0]]
    chosen = [i for i in order[:max_sentences] if scores[i] >= best - EXTRACT_KEEP_WITHIN]
    chosen.sort(key=lambda i: candidates[i][:2])
    return " ".join(_as_sentence(candidates[i][2]) for i in chosen)
