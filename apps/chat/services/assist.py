"""Agent assist: a KB-grounded draft reply for the agent who has taken a conversation over.

``draft_reply(conversation)`` answers the customer's latest question(s) with the reply
pipeline's own parts (retrieval, the grounded prompt, the chat LM, the grounding check and
the extractive fallback of ``reply_checks``) but streams nothing and stores nothing: the
agent edits the draft or sends it as is. When the latest customer turn only asks for a
person ("I want a human"), the draft answers their earlier question instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.chat.models import Conversation, Message
from apps.chat.services import prompting
from apps.chat.services.conversations import article_url
from apps.chat.services.index import akb_search
from apps.chat.services.reply import safe_passages
from apps.chat.services.reply_checks import extractive_reply, reply_checked
from apps.mlops.services.serving import model_get
from ml.lm_gate import BusyError

log = logging.getLogger(__name__)

__all__ = ["Draft", "DraftUnavailable", "draft_reply"]


@dataclass(frozen=True)
class Draft:
    """An agent-assist draft: not stored; ``text`` is "" when nothing in the KB fits."""

    text: str
    sources: list[dict[str, Any]] = field(default_factory=list)


class DraftUnavailable(Exception):
    """No embedder or chat LM can be loaded in this process: no draft (the API's 503)."""


def _draft_questions(conversation: Conversation) -> list[str]:
    """What a draft may answer, best first: the customer's messages since the last reply by the
    assistant or an agent (joined), then their earlier messages, newest first ("I want a
    person" after a returns question: the draft answers the returns question)."""
    rows = list(
        Message.objects.filter(conversation=conversation)
        .exclude(role=Message.Role.SYSTEM)
        .order_by("-pk")
        .values_list("role", "text")[:20]
    )
    latest: list[str] = []
    earlier: list[str] = []
    for role, text in rows:
        if role != Message.Role.CUSTOMER:
            if latest:
                latest.append("")  # the latest turn ends here
            continue
        (earlier if "" in latest else latest).append(text)
    latest = [text for text in latest if text]
    candidates = [" ".join(reversed(latest[:3])).strip(), *earlier[:3]]
    return [text for text in candidates if text.strip()]


async def draft_reply(conversation: Conversation) -> Draft:
    """A KB-grounded reply to the customer's latest question(s), for an agent to edit or send.

    Same retrieval, generation, grounding check and extractive fallback as
    ``reply.reply_events``, without streaming and without storing anything. ``Draft("")``
    when there is no customer question or nothing in the KB comes close.

    Raises:
        DraftUnavailable: no embedder or chat LM can be loaded here.
    """
    question, passages = "", []
    try:
        for candidate in await sync_to_async(_draft_questions)(conversation):
            found = await akb_search(candidate, settings.TRELLIS_CHAT_PASSAGES)
            if found and found[0].score >= settings.TRELLIS_CHAT_MIN_PASSAGE_SCORE:
                question, passages = candidate, found
                break
        if not passages:
            return Draft("")
        embedder = await sync_to_async(model_get)("embedder")
        lm = await sync_to_async(model_get)("chat-lm")
    except Exception as exc:  # ml.registry.ModelUnavailable, a broken artifact: nothing to draft with
        raise DraftUnavailable(f"No model can draft replies on this server: {exc}") from exc
    sources = [
        {"article_id": p.article_id, "title": p.article_title, "heading": p.heading, "url": article_url(p.article_id)}
        for p in passages
    ]
    messages = prompting.build_messages(question, safe_passages(passages))
    try:
        text = await lm.complete(messages, max_new_tokens=settings.TRELLIS_CHAT_MAX_REPLY_TOKENS, temperature=0.0)
    except (BusyError, RuntimeError, ValueError) as exc:
        log.info("draft from the passages (%s)", exc)
        return Draft(await extractive_reply(question, passages, embedder), sources)
    final, *_ = await reply_checked(text, question, passages, embedder, leaked=False)
    return Draft(final, sources)
