"""apps.serving.services.chat with a fake chat model: OpenAI's chunk layout and cancellation."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync

from apps.serving.exceptions import ServerBusy
from apps.serving.services.chat import ChatParams, chat_events, chat_start, tracker
from ml.lm_gate import BusyError
from tests.serving.conftest import FakeChatLM

PARAMS = ChatParams(messages=[{"role": "user", "content": "hi"}], max_new_tokens=3, temperature=0.0, top_p=1.0,
                    stop=[])


def stream(lm: FakeChatLM, *, include_usage: bool, read: int | None = None) -> list[dict | str]:
    """Runs a reply to the end (or stops reading after ``read`` events) on one event loop."""

    async def scenario() -> list[bytes]:
        run = await chat_start(lm=lm, params=PARAMS, model="chat-lm-default")
        events = chat_events(run, include_usage=include_usage)
        out = []
        async for event in events:
            out.append(event)
            if read is not None and len(out) == read:
                await events.aclose()  # what Django does when the client goes away
                break
        return out

    payloads = [e.decode().removeprefix("data: ").rstrip("\n") for e in async_to_sync(scenario)()]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def test_events_follow_openai_with_include_usage():
    events = stream(FakeChatLM(), include_usage=True)

    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello there!"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1


def test_without_include_usage_the_finish_chunk_carries_usage():
    events = stream(FakeChatLM(), include_usage=False)

    finish = events[-2]
    assert finish["choices"][0]["finish_reason"] == "length"
    assert finish["usage"]["completion_tokens"] == 3
    assert all("usage" not in c for c in events[:-2])


def test_a_failure_mid_reply_ends_with_an_error_event_and_no_done():
    lm = FakeChatLM()
    lm.fail_after = 1

    events = stream(lm, include_usage=False)

    assert "[DONE]" not in events
    assert events[-1]["error"]["code"] == "generation_failed"


def test_closing_the_events_closes_the_model_stream():
    before = tracker.snapshot()["cancelled"]

    stream(FakeChatLM(), include_usage=False, read=2)  # the role chunk and the first piece

    after = tracker.snapshot()
    assert after["cancelled"] == before + 1
    assert after["in_flight"] == 0


def test_a_full_queue_is_server_busy_with_retry_after():
    lm = FakeChatLM()
    lm.error = BusyError(2)

    with pytest.raises(ServerBusy) as raised:
        stream(lm, include_usage=False)

    assert raised.value.retry_after_s >= 1
