"""The assistant's reply to a customer message, as a stream of events.

``reply_events(conversation, customer_message)`` retrieves passages (``index.akb_search``),
classifies the intent (with its abstention), decides (``services.decision``) and then either
hands off, asks to clarify, says honestly that it does not know, or generates a grounded
answer with the chat LM, streamed piece by piece. Events, in order:

- ``ReplyStarted(message_id)``: the assistant's message row exists (``completed=False``);
- ``ReplyToken(message_id, text)``: zero or more pieces of generated text;
- then exactly one of ``ReplyFinished(message, replaced)`` (the stored reply) or
  ``HandedOff(reason, message)`` (the conversation now waits for a person; ``message`` is
  the assistant's "connecting you" reply).

**The final text wins.** After generation the reply is checked: empty, declining ("I'm unable
to..."), not grounded in the passages (``grounding.grounding_check``) or repeating the system
prompt (``guard.reply_leaks``, also checked after every piece while streaming) -> the stored
reply becomes the passages' best sentences (``grounding.extractive_answer``, generator
``extractive``) and ``ReplyFinished.replaced`` is True. A client must replace the streamed
text with ``message.text`` from the final event (the socket's ``message_end`` carries it).
When the question itself looks like a prompt injection (``guard.injection_suspected``) the LM
output is not streamed at all: it is generated, checked, then sent whole.

A full LM queue (``BusyError``) never makes the customer wait: the reply is the extractive
answer at once (``timings["busy"]`` is True). Closing the iterator (customer left, agent took
over, ``stop``) stops generation and stores the text streamed so far with ``completed=False``.

Torch work stays on the process's compute lane: the intent model's ``apredict`` and the LM's
stream are lane calls, and the grounding check and extractive answer run as lane jobs.
``akb_search`` embeds the question on the lane too (``aembed``); its index search and
database read run in the sync worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from apps.chat.models import Conversation, Message
from apps.chat.services import prompting
from apps.chat.services.conversations import conversation_handoff
from apps.chat.services.decision import Decision, IntentGuess, decide
from apps.chat.services.guard import injection_suspected, reply_leaks, sanitize_passage
from apps.chat.services.index import Passage, akb_search
from apps.chat.services.reply_checks import extractive_reply, reply_checked
from apps.mlops.services.serving import model_get
from ml.lm_gate import BusyError

log = logging.getLogger(__name__)

HANDOFF_REPLY = "I'm connecting you with a person from our team. They will be with you shortly."
CLARIFY_REPLY = "Could you tell me a little more about what you need, for example which order or which policy?"
CLARIFY_OPTIONS_REPLY = "Do you mean {0} or {1}?"
HISTORY_TURNS = 6  # earlier messages read for context (prompting keeps the last 4)


@dataclass(frozen=True)
class ReplyStarted:
    message_id: int


@dataclass(frozen=True)
class ReplyToken:
    message_id: int
    text: str


@dataclass(frozen=True)
class ReplyFinished:
    message: Message
    replaced: bool = False  # the stored text differs from the streamed one: show message.text


@dataclass(frozen=True)
class HandedOff:
    reason: str
    message: Message


ReplyEvent = ReplyStarted | ReplyToken | ReplyFinished | HandedOff


@dataclass
class _Run:
    """What one reply has gathered so far (timings in ms since the start)."""

    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    streamed: list[str] = field(default_factory=list)

    def mark(self, name: str) -> None:
        self.timings[name] = round((time.perf_counter() - self.started) * 1000, 1)


# --- pieces -------------------------------------------------------------------------------


def _passage_sources(passages: list[Passage]) -> list[dict[str, Any]]:
    return [
        {
            "chunk_id": p.chunk_id,
            "article_id": p.article_id,
            "title": p.article_title,
            "heading": p.heading,
            "score": p.score,
        }
        for p in passages
    ]


def safe_passages(passages: list[Passage]) -> list[dict[str, str]]:
    """The passages as the prompt reads them, with instruction-like lines removed (``guard``)."""
    return [
        {"article_title": p.article_title, "heading": p.heading, "text": sanitize_passage(p.text)} for p in passages
    ]


def _history(conversation: Conversation, before: Message) -> list[dict[str, str]]:
    rows = (
        Message.objects.filter(conversation=conversation, pk__lt=before.pk, completed=True)
        .exclude(role=Message.Role.SYSTEM)
        .order_by("-pk")
        .values_list("role", "text")[:HISTORY_TURNS]
    )
    roles = {Message.Role.CUSTOMER: "user", Message.Role.ASSISTANT: "assistant", Message.Role.AGENT: "assistant"}
    return [{"role": roles[role], "content": text} for role, text in reversed(rows) if text]


def _unknown_streak(conversation: Conversation, before: Message) -> int:
    decisions = (
        Message.objects.filter(conversation=conversation, pk__lt=before.pk)
        .exclude(role__in=(Message.Role.CUSTOMER, Message.Role.SYSTEM))
        .order_by("-pk")
        .values_list("decision", flat=True)[:5]
    )
    streak = 0
    for decision in decisions:
        if decision != Message.Decision.UNKNOWN:
            break
        streak += 1
    return streak


def _context(conversation: Conversation, message: Message) -> tuple[list[dict[str, str]], int, list[str]]:
    route = conversation.route
    handoff_intents = list(route.handoff_intents or []) if route is not None else []
    return _history(conversation, message), _unknown_streak(conversation, message), handoff_intents


async def _retrieve(question: str, run: _Run) -> list[Passage]:
    passages = await akb_search(question, settings.TRELLIS_CHAT_PASSAGES)
    run.mark("retrieve_ms")
    return passages


async def _classify(question: str, run: _Run) -> IntentGuess:
    """The intent model's guess; no guess (and a note) when the model cannot be loaded."""
    began = time.perf_counter()
    try:
        model = await sync_to_async(model_get)("intent")
        prediction = (await model.apredict([question]))[0]
    except Exception as exc:  # a broken intent model must not stop the reply: decide without it
        log.warning("intent model unavailable: %s", exc)
        run.timings["intent_error"] = str(exc)[:200]
        return IntentGuess()
    finally:
        run.timings["classify_ms"] = round((time.perf_counter() - began) * 1000, 1)
    run.versions["intent"] = str(getattr(model, "version", ""))
    return IntentGuess(prediction.label, round(float(prediction.confidence), 4), bool(prediction.abstained))


@sync_to_async
def _message_create(conversation: Conversation, fields: dict[str, Any]) -> Message:
    return Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, completed=False, **fields)


@sync_to_async
def _message_save(message: Message, fields: dict[str, Any]) -> Message:
    for name, value in fields.items():
        setattr(message, name, value)
    message.save(update_fields=list(fields))
    Conversation.objects.filter(pk=message.conversation_id).update(last_activity_at=timezone.now())
    return message


def _template_text(decision: Decision) -> str:
    if decision.kind == Message.Decision.HANDOFF:
        return HANDOFF_REPLY
    if decision.kind == Message.Decision.UNKNOWN:
        return prompting.UNKNOWN_REPLY
    if decision.options:
        return CLARIFY_OPTIONS_REPLY.format(*decision.options)
    return CLARIFY_REPLY


# --- generation ---------------------------------------------------------------------------


async def _generate(
    lm: Any, messages: list[dict[str, str]], run: _Run, *, message_id: int, stream_out: bool
) -> AsyncIterator[ReplyToken | tuple[str, bool]]:
    """Yields ReplyTokens (when ``stream_out``) and finally ``(text, leaked)``.

    Stops the moment the text so far repeats the system prompt. Raises BusyError from the
    first piece when the LM's queue is full.
    """
    pieces: list[str] = []
    leaked = False
    stream = lm.stream(messages, max_new_tokens=settings.TRELLIS_CHAT_MAX_REPLY_TOKENS, temperature=0.0)
    async with contextlib.aclosing(stream):
        async for piece in stream:
            if not pieces:
                run.mark("first_token_ms")
            pieces.append(piece)
            if reply_leaks("".join(pieces), system_prompt=prompting.SYSTEM_PROMPT):
                leaked = True
                break  # closing the stream stops the decode loop within one step
            if stream_out:
                run.streamed.append(piece)
                yield ReplyToken(message_id, piece)
    yield "".join(pieces), leaked


async def reply_events(conversation: Conversation, customer_message: Message) -> AsyncIterator[ReplyEvent]:
    """The assistant's reply to ``customer_message`` (see the module docstring).

    Yields nothing when the conversation is not with the assistant (waiting, with an agent,
    closed): people answer there.
    """
    await sync_to_async(conversation.refresh_from_db)(fields=["status"])  # an agent may have taken it since
    if conversation.status != Conversation.Status.BOT:
        return
    run = _Run()
    question = customer_message.text
    passages = await _retrieve(question, run)
    intent = await _classify(question, run)
    history, streak, handoff_intents = await sync_to_async(_context)(conversation, customer_message)
    decision = decide(
        text=question,
        passages=passages,
        intent=intent,
        handoff_intents=handoff_intents,
        unknown_streak=streak,
        min_score=settings.TRELLIS_CHAT_MIN_PASSAGE_SCORE,
    )
    run.timings["why"] = decision.why
    answering = decision.kind == Message.Decision.ANSWER
    message = await _message_create(
        conversation,
        {
            "decision": decision.kind,
            "intent": intent.label,
            "confidence": intent.confidence,
            "abstained": intent.abstained,
            "sources": _passage_sources(passages) if answering else [],
            "generator": Message.Generator.LM if answering else Message.Generator.TEMPLATE,
        },
    )
    finished = False
    try:
        yield ReplyStarted(message.pk)
        if not answering:
            run.mark("total_ms")
            fields = {"text": _template_text(decision), "completed": True, "timings": run.timings}
            message = await _message_save(message, {**fields, "model_versions": run.versions})
            if decision.kind == Message.Decision.HANDOFF:
                await sync_to_async(conversation_handoff)(conversation, decision.handoff_reason)
                finished = True
                yield HandedOff(decision.handoff_reason, message)
            else:
                finished = True
                yield ReplyFinished(message)
            return
        async for event in _answer(question, passages, history, run, message):
            if isinstance(event, ReplyFinished):
                finished = True
            yield event
    finally:
        if not finished:  # closed or cancelled mid-reply: keep what the customer saw
            run.mark("total_ms")
            run.timings["cancelled"] = True
            partial = {"text": "".join(run.streamed), "completed": False, "timings": run.timings}
            await asyncio.shield(_message_save(message, {**partial, "model_versions": run.versions}))


async def _from_passages(question: str, passages: list[Passage], embedder: Any, why: str) -> tuple[Any, ...]:
    return await extractive_reply(question, passages, embedder), Message.Generator.EXTRACTIVE, None, None, why


async def _answer(
    question: str, passages: list[Passage], history: list[dict[str, str]], run: _Run, message: Message
) -> AsyncIterator[ReplyEvent]:
    embedder = await sync_to_async(model_get)("embedder")
    lm = await sync_to_async(model_get)("chat-lm")
    run.versions["chat-lm"] = str(getattr(lm, "version", ""))
    run.versions["embedder"] = str(getattr(embedder, "version", ""))
    suspected = injection_suspected(question)
    run.timings["injection_suspected"] = suspected
    messages = prompting.build_messages(question, safe_passages(passages), history)
    text, leaked = "", False
    try:
        async for event in _generate(lm, messages, run, message_id=message.pk, stream_out=not suspected):
            if isinstance(event, ReplyToken):
                yield event
            else:
                text, leaked = event
    except BusyError:  # the LM's queue is full: answer from the passages now, never wait
        run.timings["busy"] = True
        checked = (
            await extractive_reply(question, passages, embedder),
            Message.Generator.EXTRACTIVE,
            None,
            None,
            "busy",
        )
    except (RuntimeError, ValueError) as exc:  # the model failed or the prompt did not fit
        log.warning("chat LM failed, answering from the passages: %s", exc)
        run.timings["lm_error"] = str(exc)[:200]
        checked = (
            await extractive_reply(question, passages, embedder),
            Message.Generator.EXTRACTIVE,
            None,
            None,
            "error",
        )
    else:
        checked = await reply_checked(text, question, passages, embedder, leaked=leaked)
    final, generator, grounded, score, why = checked
    run.timings["replaced"] = why
    run.mark("total_ms")
    fields = {
        "text": final,
        "generator": generator,
        "grounded": grounded,
        "grounding_score": score,
        "completed": True,
        "timings": run.timings,
        "model_versions": run.versions,
    }
    message = await _message_save(message, fields)
    yield ReplyFinished(message, replaced=final != "".join(run.streamed))
