"""The last look at a generated reply before it is stored: does it decline, leak the system
prompt, or say things the passages do not? If so, the passages' best sentences replace it.

Used by ``services.reply`` (the customer's reply and the agent-assist draft). The grounding
check and the extractive answer embed text, so they run as jobs on the embedder's compute lane.
"""

from __future__ import annotations

import re
from typing import Any

from apps.chat.models import Message
from apps.chat.services import prompting
from apps.chat.services.grounding import extractive_answer, grounding_check
from apps.chat.services.guard import reply_leaks
from apps.chat.services.index import Passage
from ml.compute_lane import default_lane

_CITATION = re.compile(r"\s*\[\d{1,2}\]")
# A reply that declines although the passages answer the question ("I'm unable to provide
# assistance with refunds", the bundled 135M model's habit) is replaced by the passages.
_DECLINES = re.compile(
    r"\b(?:unable|not able|cannot|can'?t|can’t)\s+(?:to\s+)?(?:provide|help|assist|answer|give)\b", re.IGNORECASE
)


# The 135M model sometimes loops ("1. 1. 1. ...", one sentence seven times) until it runs out
# of tokens; such a reply can still pass the grounding check sentence by sentence. Six words
# repeated three times is a loop: a list of three tiers ("Gold members can return ...",
# "Silver members can return ...") shares at most five.
_LOOP_WORDS, _LOOP_TIMES = 6, 3
_WORDS = re.compile(r"\w+")


def _lane(embedder: Any) -> Any:
    return getattr(embedder, "lane", None) or default_lane()


def declines(text: str) -> bool:
    return prompting.says_unknown(text) or bool(_DECLINES.search(text))


def repeats(text: str) -> bool:
    """True when the reply loops: some run of six words comes back three times or more."""
    words = _WORDS.findall(text.lower())
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - _LOOP_WORDS + 1):
        gram = tuple(words[i : i + _LOOP_WORDS])
        seen[gram] = seen.get(gram, 0) + 1
        if seen[gram] >= _LOOP_TIMES:
            return True
    return False


async def reply_checked(
    text: str, question: str, passages: list[Passage], embedder: Any, *, leaked: bool
) -> tuple[str, str, bool | None, float | None, str]:
    """(final text, generator, grounded, grounding score, why replaced) for a generated reply."""
    text = text.strip()
    if not leaked and text:
        leaked = reply_leaks(text, system_prompt=prompting.SYSTEM_PROMPT, allowed=[p.text for p in passages])
    grounded: bool | None = None
    score: float | None = None
    if text and not leaked:
        uncited = _CITATION.sub("", text)  # "[1]" is a citation, not a number to find in the passages
        result = await _lane(embedder).call(grounding_check, uncited, passages, embedder=embedder)
        grounded, score = bool(result.grounded), round(float(result.score), 4)
    why = "leak" if leaked else "empty" if not text else "declined" if declines(text) else ""
    why = why or ("repeats" if repeats(text) else "")
    why = why or ("not grounded" if not grounded else "")
    if not why:
        return text, Message.Generator.LM, grounded, score, ""
    return await extractive_reply(question, passages, embedder), Message.Generator.EXTRACTIVE, grounded, score, why


async def extractive_reply(question: str, passages: list[Passage], embedder: Any) -> str:
    if not passages:
        return prompting.UNKNOWN_REPLY
    answer = await _lane(embedder).call(extractive_answer, question, passages, embedder=embedder)
    return answer.strip() or prompting.UNKNOWN_REPLY
