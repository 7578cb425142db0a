"""Chat LM: conversion, streaming, stop strings, cancellation and the admission gate.

Runs the real bundled SmolLM2 (converted once per artifacts dir, see conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent import futures
from pathlib import Path

import pytest
import torch

from ml.artifacts import MANIFEST, Manifest, read_manifest, write_manifest
from ml.generate import (
    BusyError,
    ChatLM,
    GenerationGate,
    GenerationStats,
    publish_dir,
)
from ml.lm_stream import held_back, stop_index

STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def lm(registry) -> ChatLM:
    return registry.get("chat-lm")


def _join_worker(lm: ChatLM, timeout: float = 120.0) -> None:
    # Waits until the latest sequence has left the decode loop. A generous bound so a slow
    # shared machine does not fail the test; a sequence that ignored the cancellation
    # would still be decoding 200 tokens later.
    run = lm.last_run
    assert run is not None
    futures.wait([run], timeout)


# -- default artifact -----------------------------------------------------------------
def test_default_is_converted_once_and_loads_offline(registry, lm):
    # given the bundled default, converted on first use
    active = registry.active("chat-lm")
    weights = active.path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns

    # when it is located and fetched again
    from ml.defaults import chat_lm_default

    again = chat_lm_default()

    # then nothing is converted twice, no staging folder is left, the model is shared
    assert again == active.path
    assert weights.stat().st_mtime_ns == stamp
    assert read_manifest(active.path).kind == "causal-lm"
    assert not list(active.path.parent.glob(".default-*"))
    assert registry.get("chat-lm") is lm
    assert isinstance(lm, ChatLM)
    assert lm.tokenizer.eos_token == "<|im_end|>"
    assert lm.model.dtype == torch.float32 or lm.info.is_gpu


def test_publish_dir_never_leaves_a_complete_looking_mix(tmp_path: Path):
    # given an existing artifact with a manifest and a staged replacement
    target, staging = tmp_path / "art", tmp_path / ".art-new"
    target.mkdir()
    staging.mkdir()
    write_manifest(target, Manifest(role="chat-lm", kind="causal-lm", version="old"))
    (target / "model.safetensors").write_text("old")
    (staging / "model.safetensors").write_text("new")

    # when the staged files are published
    publish_dir(staging, target)

    # then the files are replaced and the old manifest is gone until the caller writes one
    assert (target / "model.safetensors").read_text() == "new"
    assert not (target / MANIFEST).exists()
    assert not staging.exists()


# -- streaming ------------------------------------------------------------------------
def test_stream_yields_pieces_that_match_greedy_generate(lm):
    # given a prompt and greedy settings
    stats = GenerationStats()

    async def collect() -> list[str]:
        return [piece async for piece in lm.stream(STORY, max_new_tokens=40, stats=stats)]

    # when it is streamed, and generated in one go, and by the raw model
    pieces = asyncio.run(collect())
    text = lm.generate_text(STORY, max_new_tokens=40)
    ids = torch.tensor([lm.prompt_ids(STORY, 40)], device=lm.info.device)
    with torch.inference_mode():
        raw = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False)
    raw_text = lm.tokenizer.decode(raw[0, ids.shape[1] :], skip_special_tokens=True)

    # then several non-empty pieces join to the same text
    assert len(pieces) >= 3
    assert all(pieces)
    assert "".join(pieces) == text == raw_text
    assert stats.tokens == 40
    assert stats.finish_reason == "length"
    assert stats.first_piece_s is not None
    assert lm.stats()["requests"] >= 2


def test_max_new_tokens_is_respected(lm):
    stats = GenerationStats()

    text = lm.generate_text(STORY, max_new_tokens=6, stats=stats)

    assert text
    assert stats.tokens == 6
    assert len(lm.tokenizer(text, add_special_tokens=False).input_ids) <= 6


def test_short_answer_ends_at_end_of_turn(lm):
    stats = GenerationStats()

    text = lm.generate_text(CAPITAL, max_new_tokens=60, stats=stats)

    assert "Paris" in text
    assert stats.finish_reason == "eos"
    assert stats.tokens < 60


def test_stop_sequence_cuts_the_output(lm):
    # given the greedy reply and a word from its middle as a stop string
    full = lm.generate_text(STORY, max_new_tokens=40)
    words = full.split()
    stop = " " + words[len(words) // 2]
    cut = full.index(stop)
    stats = GenerationStats()

    # when the same prompt is generated with that stop string
    text = lm.generate_text(STORY, max_new_tokens=40, stop=[stop, "#never#"], stats=stats)

    # then the reply ends right before it, and generation stopped there
    assert text == full[:cut]
    assert lm.generate_text(STORY, max_new_tokens=40, stop=stop) == text  # one string, as OpenAI allows
    assert stop not in text
    assert stats.finish_reason == "stop"
    assert stats.tokens < 40


def test_stop_helpers_hold_back_partial_matches():
    assert stop_index("Hello User: hi", ["User:"]) == 6
    assert stop_index("Hello", ["User:"]) is None
    assert held_back("Hello Us", ["User:"]) == 2
    assert held_back("Hello Usx", ["User:"]) == 0
    assert held_back("a\n", ["\n\n", "xyz"]) == 1


def test_bad_messages_are_rejected(lm):
    with pytest.raises(ValueError, match="role"):
        lm.generate_text([{"role": "robot", "content": "hi"}])
    with pytest.raises(ValueError, match="empty"):
        lm.generate_text([])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": 0.7, "top_p": 0.0}, "top_p"),
        ({"stop": ["ok", 3]}, "stop"),
    ],
)
def test_bad_sampling_parameters_are_rejected_before_any_work(lm, kwargs, message):
    steps = lm.decoder.steps
    with pytest.raises(ValueError, match=message):
        lm.generate_text(CAPITAL, **kwargs)
    assert lm.decoder.steps == steps
    assert lm.gate.active == 0


def test_gate_size_defaults_by_device_and_follows_the_environment(monkeypatch):
    from ml.lm_gate import CPU_CONCURRENCY, GPU_CONCURRENCY, default_concurrency

    monkeypatch.delenv("TRELLIS_LM_CONCURRENCY", raising=False)
    assert default_concurrency(False) == CPU_CONCURRENCY == 8
    assert default_concurrency(True) == GPU_CONCURRENCY == 32
    assert GenerationGate().max_waiting == 8
    monkeypatch.setenv("TRELLIS_LM_CONCURRENCY", "3")
    assert default_concurrency(True) == 3
    assert GenerationGate().max_concurrent == 3


# -- cancellation ---------------------------------------------------------------------
def test_closing_the_stream_stops_generation(lm):
    stats = GenerationStats()

    async def first_piece() -> str:
        async with contextlib.aclosing(lm.stream(STORY, max_new_tokens=200, stats=stats)) as pieces:
            async for piece in pieces:
                return piece
        raise AssertionError("no piece")

    assert asyncio.run(first_piece())

    _join_worker(lm)
    assert lm.last_run.done()
    assert lm.last_run.result() == "cancelled"
    assert stats.tokens < 50  # far below 200: the loop dropped it at the next step
    assert stats.finish_reason == "cancelled"
    assert lm.gate.active == 0
    assert lm.decoder.rows == 0


def test_breaking_out_without_closing_stops_generation(lm):
    stats = GenerationStats()

    async def consume() -> None:
        async for _piece in lm.stream(STORY, max_new_tokens=200, stats=stats):
            break
        # asyncio finalises the abandoned generator on the loop; give it the chance
        await asyncio.to_thread(_join_worker, lm)

    asyncio.run(consume())

    assert lm.last_run.done()
    assert stats.tokens < 50


def test_cancelling_the_consumer_task_stops_generation(lm):
    stats = GenerationStats()

    async def scenario() -> None:
        got_piece = asyncio.Event()

        async def consume() -> None:
            async for _piece in lm.stream(STORY, max_new_tokens=200, stats=stats):
                got_piece.set()

        task = asyncio.create_task(consume())
        await got_piece.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())

    _join_worker(lm)
    assert lm.last_run.done()
    assert stats.tokens < 50
    assert stats.finish_reason == "cancelled"


# -- admission gate -------------------------------------------------------------------
def test_gate_queues_one_then_refuses_with_a_clear_message():
    async def scenario() -> tuple[list[int], BusyError, bool]:
        gate = GenerationGate(max_concurrent=1, max_waiting=1)
        positions: list[int] = []
        await gate.acquire()  # first caller runs
        second = asyncio.create_task(gate.acquire(positions.append))
        await asyncio.sleep(0)
        with pytest.raises(BusyError) as busy:
            await gate.acquire()  # third caller: the queue is full
        gate.release()
        await asyncio.wait_for(second, 5)
        return positions, busy.value, gate.active == 1 and gate.waiting == 0

    positions, busy, handed_over = asyncio.run(scenario())

    assert positions == [1]
    assert str(busy) == "the assistant is busy: 1 request is already waiting; try again shortly"
    assert handed_over


def test_cancelled_waiter_leaves_the_queue_and_others_move_up():
    async def scenario() -> tuple[list[int], list[int], bool]:
        gate = GenerationGate(max_concurrent=1, max_waiting=2)
        b_positions: list[int] = []
        c_positions: list[int] = []

        async def async_record(position: int) -> None:  # coroutine callbacks are awaited
            c_positions.append(position)

        await gate.acquire()
        b = asyncio.create_task(gate.acquire(b_positions.append))
        await asyncio.sleep(0)
        c = asyncio.create_task(gate.acquire(async_record))
        await asyncio.sleep(0)
        b.cancel()
        await asyncio.sleep(0.01)
        d = asyncio.create_task(gate.acquire())  # the freed place can be taken again
        await asyncio.sleep(0)
        gate.release()
        await asyncio.wait_for(c, 5)  # FIFO: c before d
        d_waiting = not d.done()
        gate.release()
        await asyncio.wait_for(d, 5)
        return b_positions, c_positions, d_waiting

    b_positions, c_positions, d_waiting = asyncio.run(scenario())

    assert b_positions == [1]
    assert c_positions == [2, 1]
    assert d_waiting


def test_slot_granted_to_a_cancelled_waiter_is_passed_on():
    async def scenario() -> int:
        gate = GenerationGate(max_concurrent=1, max_waiting=2)
        await gate.acquire()
        b = asyncio.create_task(gate.acquire())
        c = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        gate.release()  # grants b ...
        b.cancel()  # ... which is cancelled before it resumes
        await asyncio.wait_for(c, 5)
        with contextlib.suppress(asyncio.CancelledError):
            await b
        return gate.active

    assert asyncio.run(scenario()) == 1


def test_streams_share_the_gate_of_their_model(lm):
    # given a model whose gate admits one generation and one waiter
    gated = ChatLM(lm.model, lm.tokenizer, gate=GenerationGate(max_concurrent=1, max_waiting=1))

    async def scenario() -> tuple[list[int], str]:
        positions: list[int] = []
        queued = asyncio.Event()

        def on_queued(position: int) -> None:
            positions.append(position)
            queued.set()

        first = gated.stream(STORY, max_new_tokens=200)
        await anext(first)  # first caller is generating
        second_text = asyncio.create_task(gated.complete(CAPITAL, max_new_tokens=30, on_queued=on_queued))
        await asyncio.wait_for(queued.wait(), 30)
        with pytest.raises(BusyError):
            await gated.complete(CAPITAL, max_new_tokens=5)
        await first.aclose()  # the first caller leaves: the loop drops it and frees the slot
        return positions, await asyncio.wait_for(second_text, 120)

    positions, text = asyncio.run(scenario())

    assert positions == [1]
    assert "Paris" in text
    assert gated.gate.active == 0
    assert gated.stats()["busy_rejections"] == 1
