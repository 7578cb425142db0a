"""What the assistant does with a customer message: answer, ask to clarify, say it does not
know, or hand off to a person. Pure functions of the message, the retrieved passages and the
intent prediction (no database, no model), so every branch is cheap to test.

Order of the checks (the first that fires wins):

1. asked for a person (intent ``contact_human_agent`` / ``contact_customer_service`` /
   ``human_agent``, or a phrase such as "talk to a human") -> hand off, reason ``asked``;
2. the route's ``handoff_intents`` hold the intent -> hand off, reason ``intent``;
3. upset customer (intent ``complaint`` at ``ANGRY_CONFIDENCE`` or more, or strong anger cues:
   profanity, a shouted message, "!!!", "worst", "ridiculous") -> hand off, reason ``angry``;
4. the knowledge base has nothing close (best passage below ``min_score``, or the intent
   model abstained and the best passage is below ``min_score + WEAK_MARGIN``):
   after ``UNKNOWN_STREAK_HANDOFF`` "I don't know" replies in a row -> hand off
   (``out_of_scope`` when the intent model abstained, else ``low_retrieval``); a message
   of fewer than ``SHORT_WORDS`` words -> clarify; else -> unknown;
5. too short to tell (fewer than ``SHORT_WORDS`` words and no passage at ``STRONG_SCORE``),
   or the two best passages come from different articles with different texts and tie
   within ``TIE_MARGIN`` while neither is strong -> clarify;
6. otherwise -> answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from apps.chat.models import Conversation, Message

PERSON_INTENTS = frozenset({"contact_human_agent", "contact_customer_service", "human_agent"})
ANGRY_INTENTS = frozenset({"complaint"})
ANGRY_CONFIDENCE = 0.7  # a complaint the classifier is sure of; below, a complaint is answered
UNKNOWN_STREAK_HANDOFF = 2  # "I don't know" twice in a row: the third miss goes to a person
SHORT_WORDS = 3  # "refund?" or "hello there" say too little to retrieve on
STRONG_SCORE = 0.55  # MiniLM cosine at which a passage clearly matches (README "Reply pipeline")
WEAK_MARGIN = 0.1  # an abstaining intent model and a passage this close to min_score: unknown
TIE_MARGIN = 0.005  # two different articles this close: ask which one is meant
SAME_TEXT_OVERLAP = 0.6  # word overlap (Jaccard) above which two passages count as the same text

_PERSON = re.compile(
    r"\b(?:talk|speak|chat|connect|transfer|put)\w*\s+(?:me\s+)?(?:to|with)\s+(?:a|an|the|some|your|real)?\s*"
    r"(?:real\s+|live\s+)?(?:human|agent|person|representative|rep|operator|somebody|someone|manager)\b"
    r"|\b(?:human|real person|live agent|representative)\s*(?:please|now|!|$)"
    r"|\bi\s+(?:want|need|would like)\s+(?:a|an|to\s+talk\s+to\s+a)\s+(?:human|person|agent|representative)\b",
    re.IGNORECASE,
)
_PROFANITY = re.compile(
    r"\b(?:f+u+c+k\w*|sh[i1]t\w*|crap|damn\w*|bullshit|wtf|stfu|screw\s+you|scam\w*|idiot\w*|useless|pathetic)\b",
    re.IGNORECASE,
)
_ANGER_WORDS = re.compile(r"\b(?:worst|ridiculous|unacceptable|outrageous|disgusting|furious|fed up)\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9']+")


@dataclass(frozen=True)
class IntentGuess:
    """The intent model's answer for one message (``ml.classify.Prediction``, trimmed)."""

    label: str = ""
    confidence: float | None = None
    abstained: bool = False


@dataclass(frozen=True)
class Decision:
    kind: str  # Message.Decision
    handoff_reason: str = ""  # Conversation.HandoffReason when kind is "handoff"
    why: str = ""  # a short note for logs and the stored timings
    options: tuple[str, ...] = ()  # article titles to offer when asking to clarify


def asks_for_person(text: str) -> bool:
    return bool(_PERSON.search(text or ""))


def anger_cues(text: str) -> bool:
    """Profanity, "!!!", "worst"/"ridiculous"-style words, or a shouted message."""
    text = text or ""
    if _PROFANITY.search(text) or "!!!" in text or _ANGER_WORDS.search(text):
        return True
    letters = [c for c in text if c.isalpha()]
    words = _WORD.findall(text)
    return len(letters) >= 12 and len(words) >= 3 and sum(c.isupper() for c in letters) / len(letters) > 0.8


def word_count(text: str) -> int:
    return len(_WORD.findall(text or ""))


def _score(passage: Any) -> float:
    return float(getattr(passage, "score", 0.0) or 0.0)


def _same_text(first: Any, second: Any) -> bool:
    """Two passages saying nearly the same thing (the ABCD KB repeats policies across articles):
    asking which one is meant would be pointless."""
    a = set(_WORD.findall(str(getattr(first, "text", "")).lower()))
    b = set(_WORD.findall(str(getattr(second, "text", "")).lower()))
    return bool(a and b) and len(a & b) / len(a | b) >= SAME_TEXT_OVERLAP


def _tie(passages: Sequence[Any]) -> tuple[str, ...]:
    if len(passages) < 2:
        return ()
    first, second = passages[0], passages[1]
    if first.article_id == second.article_id or first.article_title == second.article_title:
        return ()
    if _score(first) >= STRONG_SCORE or _score(first) - _score(second) > TIE_MARGIN:
        return ()
    return () if _same_text(first, second) else (first.article_title, second.article_title)


def decide(
    *,
    text: str,
    passages: Sequence[Any],
    intent: IntentGuess,
    handoff_intents: Iterable[str] = (),
    unknown_streak: int = 0,
    min_score: float,
) -> Decision:
    """The assistant's move for ``text`` (see the module docstring for the order of checks).

    Args:
        text: the customer's (redacted) message.
        passages: ``index.Passage`` results, best first.
        intent: the intent model's guess.
        handoff_intents: the route's intents that always go to a person.
        unknown_streak: how many of the assistant's latest replies in a row were "unknown".
        min_score: the best passage's score below which the KB is taken to have no answer.
    """
    sure_intent = intent.label if intent.label and not intent.abstained else ""
    if sure_intent in PERSON_INTENTS or asks_for_person(text):
        return Decision(Message.Decision.HANDOFF, Conversation.HandoffReason.ASKED, "asked for a person")
    if sure_intent and sure_intent in set(handoff_intents):
        return Decision(Message.Decision.HANDOFF, Conversation.HandoffReason.INTENT, f"route hands off {sure_intent}")
    complaint = sure_intent in ANGRY_INTENTS and (intent.confidence or 0.0) >= ANGRY_CONFIDENCE
    if complaint or anger_cues(text):
        return Decision(Message.Decision.HANDOFF, Conversation.HandoffReason.ANGRY, "upset customer")
    best = _score(passages[0]) if passages else 0.0
    weak = best < min_score or (intent.abstained and best < min_score + WEAK_MARGIN)
    if weak:
        if unknown_streak >= UNKNOWN_STREAK_HANDOFF:
            reason = (
                Conversation.HandoffReason.OUT_OF_SCOPE
                if intent.abstained
                else Conversation.HandoffReason.LOW_RETRIEVAL
            )
            return Decision(Message.Decision.HANDOFF, reason, f"{unknown_streak} unknown in a row")
        if word_count(text) < SHORT_WORDS:
            return Decision(Message.Decision.CLARIFY, why="too short, nothing retrieved")
        return Decision(Message.Decision.UNKNOWN, why=f"best passage {best:.2f} < {min_score:.2f}")
    if word_count(text) < SHORT_WORDS and best < STRONG_SCORE:
        return Decision(Message.Decision.CLARIFY, why="too short")
    options = _tie(passages)
    if options:
        return Decision(Message.Decision.CLARIFY, why="two articles tie", options=options)
    return Decision(Message.Decision.ANSWER, why=f"best passage {best:.2f}")
