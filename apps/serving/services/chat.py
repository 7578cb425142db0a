"""Chat completions over the chat LM's stream, in OpenAI's response and chunk shapes.

``chat_start`` waits for the first piece of the reply before the view answers, so that a
full queue (429), a prompt that does not fit (400) or a failing model (500) still get a
proper status code; after that the reply is either collected (``chat_collect``) or relayed
as server-sent events (``chat_events``). Whoever stops reading first (the client going away
cancels the view or closes the event stream) closes the model's stream, which stops the
generation within one token.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from apps.serving.exceptions import ContextTooLong, GenerationFailed, InvalidInput, ServerBusy
from apps.serving.services.inference import note_in_use
from ml.lm_gate import BusyError

# GenerationStats.finish_reason -> OpenAI's finish_reason
FINISH_REASONS = {"eos": "stop", "stop": "stop", "length": "length"}


@dataclass
class ChatParams:
    messages: list[dict[str, str]]
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    seed: int | None = None


@dataclass
class ChatRun:
    """A started reply: its first piece, the rest of the stream and its live stats."""

    stream: AsyncIterator[str]
    first: str
    stats: Any  # ml GenerationStats: prompt_tokens, tokens (live), finish_reason
    model: str  # the model id reported back (the serving version)
    id: str = field(default_factory=lambda: "chatcmpl-" + uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))
    finished: bool = False

    @property
    def finish_reason(self) -> str:
        return FINISH_REASONS.get(self.stats.finish_reason, "stop")

    def usage(self) -> dict[str, int]:
        prompt, completion = int(self.stats.prompt_tokens), int(self.stats.tokens)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Tracker:
    """Replies in flight and totals, for /api/ml/stats/ (and to watch cancellation work)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, Any] = {}
        self.totals = {"started": 0, "completed": 0, "cancelled": 0, "busy": 0, "failed": 0}

    def count(self, key: str) -> None:
        with self._lock:
            self.totals[key] += 1

    def begin(self, run: ChatRun) -> None:
        with self._lock:
            self._live[id(run)] = run.stats
            self.totals["started"] += 1

    def end(self, run: ChatRun) -> None:
        with self._lock:
            if self._live.pop(id(run), None) is None:
                return
            outcome = run.stats.finish_reason
            self.totals["cancelled" if outcome == "cancelled" else "failed" if outcome == "error" else "completed"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            live = list(self._live.values())
            return {**self.totals, "in_flight": len(live), "in_flight_tokens": sum(s.tokens for s in live)}


tracker = _Tracker()


def _busy_retry_after(exc: BusyError) -> int:
    """Seconds to suggest in Retry-After: a short reply takes a few seconds per queued request."""
    return max(1, min(30, 2 * (exc.waiting + 1)))


async def chat_start(*, lm: Any, params: ChatParams, model: str) -> ChatRun:
    """Starts a reply and waits for its first piece.

    Raises:
        ServerBusy: the model's queue is full (answer 429 with Retry-After).
        ContextTooLong: the conversation leaves no room for ``max_new_tokens``.
        GenerationFailed: the model raised.
    """
    from ml.generate import GenerationStats  # torch + transformers load with the first chat, not at import

    note_in_use("chat-lm", lm)
    stats = GenerationStats()
    stream = lm.stream(
        params.messages, max_new_tokens=params.max_new_tokens, temperature=params.temperature,
        top_p=params.top_p, stop=params.stop, stats=stats, seed=params.seed,
    )
    run = ChatRun(stream=stream, first="", stats=stats, model=model)
    try:
        run.first = await anext(stream)
    except StopAsyncIteration:  # an empty reply (the model ended its turn at once)
        run.finished = True
    except BusyError as exc:
        tracker.count("busy")
        raise ServerBusy(str(exc), retry_after_s=_busy_retry_after(exc)) from exc
    except ValueError as exc:  # raised by the prompt builder before any generation
        message = str(exc)
        if "leaves no room" in message:
            raise ContextTooLong(f"The conversation is too long for this model: {message}.", param="messages") from exc
        raise InvalidInput(message, param="messages") from exc
    except RuntimeError as exc:
        tracker.count("failed")
        raise GenerationFailed(f"The chat model failed: {exc}") from exc
    tracker.begin(run)
    if run.finished:
        tracker.end(run)
    return run


async def chat_collect(run: ChatRun) -> str:
    """The rest of the reply, joined with its first piece (the non-streaming answer)."""
    pieces = [run.first]
    try:
        if not run.finished:
            async for piece in run.stream:
                pieces.append(piece)
    except RuntimeError as exc:
        raise GenerationFailed(f"The chat model failed: {exc}") from exc
    finally:
        await _close(run)
    return "".join(pieces)


def completion_body(run: ChatRun, text: str) -> dict[str, Any]:
    """OpenAI's ``chat.completion`` object."""
    return {
        "id": run.id,
        "object": "chat.completion",
        "created": run.created,
        "model": run.model,
        "system_fingerprint": run.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": run.finish_reason,
        }],
        "usage": run.usage(),
    }


def _event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"data: {data}\n\n".encode()


async def chat_events(run: ChatRun, *, include_usage: bool) -> AsyncIterator[bytes]:
    """The reply as OpenAI's server-sent events: a role chunk, content chunks, a chunk with
    ``finish_reason`` (carrying ``usage``), then ``[DONE]``. With ``include_usage``
    (``stream_options``) it is OpenAI's layout: ``usage: null`` on every chunk and a last
    chunk with empty ``choices`` and the usage."""
    base = {"id": run.id, "object": "chat.completion.chunk", "created": run.created, "model": run.model,
            "system_fingerprint": run.model}
    if include_usage:
        base["usage"] = None  # as OpenAI: null on every chunk but the last

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        return _event({**base, **extra, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                     "finish_reason": finish_reason}]})

    try:
        yield chunk({"role": "assistant", "content": ""})
        if run.first:
            yield chunk({"content": run.first})
        if not run.finished:
            try:
                async for piece in run.stream:
                    yield chunk({"content": piece})
            except RuntimeError as exc:  # the model failed mid-reply: the status line is long sent
                yield _event({"error": {"message": f"The chat model failed: {exc}", "type": "server_error",
                                        "param": None, "code": "generation_failed"}})
                return
        if include_usage:
            yield chunk({}, run.finish_reason)
        else:  # usage in every mode: on the last chunk, which has choices (clients index [0])
            yield chunk({}, run.finish_reason, usage=run.usage())
        if include_usage:
            yield _event({**base, "choices": [], "usage": run.usage()})
        yield _event("[DONE]")
    finally:
        await _close(run)


async def _close(run: ChatRun) -> None:
    """Closes the model's stream (stops generation at once if it is still running)."""
    try:
        await run.stream.aclose()  # type: ignore[attr-defined]
    finally:
        run.finished = True
        tracker.end(run)
