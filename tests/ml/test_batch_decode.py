"""Continuous batching of the chat LM: batched == solo, joins, departures, cancel, errors, lane.

Runs the real bundled SmolLM2 on its own compute lane. On padding numerics: over 16
prompts x 64 greedy tokens, batches of 4 (prefilled together, decoded left-padded, fp32 on
2 CPU threads) moved the next-token logits by at most 1.85e-4 and changed the text of none
of the 16 replies; bench/bench_serving.py measures it again (``--numerics``).
"""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from ml.compute_lane import ComputeLane
from ml.generate import BusyError, ChatLM, GenerationGate, GenerationStats
from ml.lm_stream import TextAssembler

PROMPTS = {
    "story": [{"role": "user", "content": "Write a story about a dragon who bakes bread."}],
    "capital": [{"role": "user", "content": "What is the capital of France?"}],
    "hi": [{"role": "user", "content": "Hi!"}],
    "bakery": [
        {"role": "system", "content": "You are a terse assistant for a small bakery in Lyon. Answer politely."},
        {"role": "user", "content": "When do you open on Sundays, and do you sell croissants?"},
    ],
}
LONG, SHORT = 32, 12  # new tokens: the story runs long so that the others join while it decodes


def _budget(name: str) -> int:
    return LONG if name == "story" else SHORT


@pytest.fixture(scope="module")
def lane():
    lane = ComputeLane("test-decode-lane")
    yield lane
    lane.shutdown()


@pytest.fixture(scope="module")
def lm(registry, lane) -> ChatLM:
    base = registry.get("chat-lm")
    return ChatLM(
        base.model, base.tokenizer, version=base.version, info=base.info, lane=lane,
        gate=GenerationGate(max_concurrent=8, max_waiting=8),
    )


@pytest.fixture(scope="module")
def solo(lm) -> dict[str, str]:
    """Each prompt's greedy reply generated alone (one row in the batch)."""
    return {name: lm.generate_text(messages, max_new_tokens=_budget(name)) for name, messages in PROMPTS.items()}


async def _collect(lm: ChatLM, name: str, ready: asyncio.Event | None = None, rows: list[int] | None = None,
                   **kwargs) -> str:
    pieces = []
    async for piece in lm.stream(PROMPTS[name], max_new_tokens=kwargs.pop("max_new_tokens", _budget(name)), **kwargs):
        pieces.append(piece)
        if rows is not None:
            rows.append(lm.decoder.rows)
        if ready is not None:
            ready.set()
    if ready is not None:
        ready.set()
    return "".join(pieces)


@pytest.fixture
def forward_hook(lm):
    """Registers a forward pre-hook (with kwargs) on the model for one test."""
    handles = []

    def register(hook):
        handles.append(lm.model.register_forward_pre_hook(hook, with_kwargs=True))

    yield register
    for handle in handles:
        handle.remove()


# -- batched equals solo --------------------------------------------------------------
def test_streams_started_together_decode_in_one_batch_with_their_solo_text(lm, solo):
    rows: list[int] = []

    async def scenario() -> list[str]:
        return await asyncio.gather(*(_collect(lm, name, rows=rows) for name in PROMPTS))

    texts = asyncio.run(scenario())

    assert max(rows) == 4  # all four decoded in one batch
    assert dict(zip(PROMPTS, texts, strict=True)) == solo
    assert lm.decoder.rows == 0 and lm.gate.active == 0


def test_streams_joining_mid_way_get_their_solo_text(lm, solo):
    # given the long story decoding, and each other prompt joining once the previous one streams
    async def scenario() -> tuple[dict[str, str], list[int]]:
        rows: list[int] = []
        tasks = {}
        for name in PROMPTS:
            ready = asyncio.Event()
            tasks[name] = asyncio.create_task(_collect(lm, name, ready, rows))
            await ready.wait()
        return {name: await task for name, task in tasks.items()}, rows

    texts, rows = asyncio.run(scenario())

    # then they overlapped in the batch, and every text is what it is alone
    assert max(rows) >= 3
    assert texts == solo


def test_seeded_sampling_is_reproducible_inside_a_batch(lm):
    sampled = {"temperature": 1.0, "top_p": 0.98, "seed": 1234, "max_new_tokens": SHORT}
    alone = lm.generate_text(PROMPTS["story"], **sampled)

    async def scenario() -> list[str]:
        return await asyncio.gather(_collect(lm, "hi"), _collect(lm, "story", **sampled), _collect(lm, "capital"))

    _, batched, _ = asyncio.run(scenario())
    other_seeds = {lm.generate_text(PROMPTS["story"], **{**sampled, "seed": seed}) for seed in (7, 99)}

    assert batched == alone
    assert other_seeds != {alone}  # the seed, not chance, made them equal


# -- departures -----------------------------------------------------------------------
def test_each_sequence_keeps_its_own_length_and_stop_strings(lm, solo):
    words = solo["story"].split()
    stop = " " + words[len(words) // 2]
    cut = solo["story"].index(stop)
    stats = {name: GenerationStats() for name in ("short", "stopped", "capital")}

    async def scenario() -> list[str]:
        return await asyncio.gather(
            _collect(lm, "story", max_new_tokens=5, stats=stats["short"]),
            _collect(lm, "story", stop=[stop, "#never#"], stats=stats["stopped"]),
            _collect(lm, "capital", max_new_tokens=40, stats=stats["capital"]),
        )

    short, stopped, capital = asyncio.run(scenario())

    assert stats["short"].tokens == 5 and stats["short"].finish_reason == "length"
    assert solo["story"].startswith(short)
    assert stopped == solo["story"][:cut] and stats["stopped"].finish_reason == "stop"
    assert stats["stopped"].tokens < LONG
    assert "Paris" in capital and stats["capital"].finish_reason == "eos" and stats["capital"].tokens < 40


def test_cancelling_one_stream_drops_it_within_one_step_and_others_finish(lm, solo):
    stats = GenerationStats()

    async def scenario() -> tuple[int, list[str], str]:
        victim = lm.stream(PROMPTS["story"], max_new_tokens=200, stats=stats)
        await anext(victim)
        victim_left = lm.last_run
        ready = {"capital": asyncio.Event(), "bakery": asyncio.Event()}
        others = [asyncio.create_task(_collect(lm, name, event)) for name, event in ready.items()]
        await asyncio.gather(*(event.wait() for event in ready.values()))  # all three decode together now
        await victim.aclose()
        tokens_after_cancel = stats.tokens  # at most one step of it can still be running
        texts = await asyncio.gather(*others)
        return tokens_after_cancel, texts, await asyncio.wrap_future(victim_left)

    tokens_after_cancel, (capital, bakery), left_as = asyncio.run(asyncio.wait_for(scenario(), 300))

    assert left_as == stats.finish_reason == "cancelled"


    assert stats.tokens <= tokens_after_cancel + 1
    assert stats.tokens < 200
    assert capital == solo["capital"] and bakery == solo["bakery"]
    assert lm.gate.active == 0


def test_leaving_rows_trim_the_padding_of_the_others(lm, forward_hook):
    # given a long prompt that leaves early and a short one that keeps decoding
    masks: list[torch.Tensor] = []

    def record(module, args, kwargs):
        if kwargs.get("input_ids") is not None and kwargs["input_ids"].shape[1] == 1:
            masks.append(kwargs["attention_mask"].clone())

    forward_hook(record)
    hi_len = len(lm.prompt_ids(PROMPTS["hi"], SHORT))

    async def scenario() -> None:
        await asyncio.gather(_collect(lm, "bakery", max_new_tokens=2), _collect(lm, "hi"))

    asyncio.run(scenario())

    # then steps with both rows were padded, and once alone the short one has no padding
    assert any(m.shape[0] == 2 and int(m.min()) == 0 for m in masks)
    last = masks[-1]
    assert last.shape[0] == 1 and int(last.min()) == 1
    assert last.shape[1] <= hi_len + SHORT


# -- admission --------------------------------------------------------------------------
def test_gate_bounds_the_batch_reports_positions_and_refuses_when_full(lm):
    gated = ChatLM(lm.model, lm.tokenizer, info=lm.info, lane=lm.lane,
                   gate=GenerationGate(max_concurrent=2, max_waiting=1))

    async def scenario() -> tuple[list[int], int, str]:
        positions: list[int] = []
        queued = asyncio.Event()

        def on_queued(position: int) -> None:
            positions.append(position)
            queued.set()

        first = gated.stream(PROMPTS["story"], max_new_tokens=200)
        second = gated.stream(PROMPTS["story"], max_new_tokens=200)
        await anext(first)
        await anext(second)
        third = asyncio.create_task(gated.complete(PROMPTS["capital"], max_new_tokens=30, on_queued=on_queued))
        await asyncio.wait_for(queued.wait(), 60)
        rows_while_full = gated.decoder.rows
        with pytest.raises(BusyError):
            await gated.complete(PROMPTS["hi"], max_new_tokens=5)
        await first.aclose()  # a slot frees at the next step: the queued one joins
        text = await asyncio.wait_for(third, 300)
        await second.aclose()
        return positions, rows_while_full, text

    positions, rows_while_full, text = asyncio.run(scenario())

    assert positions == [1]
    assert rows_while_full == 2
    assert "Paris" in text
    assert gated.gate.rejected == 1


# -- failures ---------------------------------------------------------------------------
def test_a_failing_step_fails_its_rows_and_the_loop_keeps_serving(lm, solo, forward_hook):
    armed = threading.Event()
    armed.set()

    def fail_first_two_row_step(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and tuple(ids.shape) == (2, 1) and armed.is_set():
            armed.clear()
            raise RuntimeError("simulated device failure")

    forward_hook(fail_first_two_row_step)

    async def scenario() -> list:
        return await asyncio.gather(_collect(lm, "story"), _collect(lm, "capital"), return_exceptions=True)

    results = asyncio.run(scenario())

    assert all(isinstance(r, RuntimeError) and "simulated device failure" in str(r) for r in results)
    assert lm.decoder.rows == 0 and lm.gate.active == 0
    assert lm.generate_text(PROMPTS["capital"], max_new_tokens=SHORT) == solo["capital"]


def test_a_failing_prefill_fails_only_its_stream(lm, solo, forward_hook):
    armed = threading.Event()

    def fail_armed_prefill(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] > 1 and armed.is_set():
            armed.clear()
            raise RuntimeError("simulated prefill failure")

    forward_hook(fail_armed_prefill)

    async def scenario() -> tuple[str, BaseException | str]:
        ready = asyncio.Event()
        story = asyncio.create_task(_collect(lm, "story", ready))
        await ready.wait()
        armed.set()
        try:
            other: BaseException | str = await _collect(lm, "capital")
        except RuntimeError as exc:
            other = exc
        return await story, other

    story, other = asyncio.run(scenario())

    assert isinstance(other, RuntimeError) and "simulated prefill failure" in str(other)
    assert story == solo["story"]


# -- one lane ---------------------------------------------------------------------------
def test_all_torch_work_runs_on_the_lane_and_embeds_interleave_with_decoding(lm, embedder, monkeypatch,
                                                                              forward_hook):
    # given the embedder on the same lane as the chat LM, and forward hooks noting threads
    monkeypatch.setattr(embedder, "lane", lm.lane)
    threads: set[int] = set()
    forward_hook(lambda module, args, kwargs: threads.add(threading.get_ident()))
    encoder = embedder.model[0]  # the transformer module: called through __call__, so hooks fire
    handle = encoder.register_forward_pre_hook(lambda module, args: threads.add(threading.get_ident()))
    stats = GenerationStats()

    async def scenario() -> tuple[list[str], int]:
        order: list[str] = []
        generation = lm.stream(PROMPTS["story"], max_new_tokens=LONG, stats=stats)
        await anext(generation)
        vectors = await embedder.aembed(["Where is my parcel?"])
        order.append("embedded")
        tokens_when_embedded = stats.tokens
        assert vectors.shape == (1, embedder.dim)
        async for _ in generation:
            pass
        order.append("generated")
        return order, tokens_when_embedded

    try:
        order, tokens_when_embedded = asyncio.run(scenario())
    finally:
        handle.remove()

    # then the embed did not wait for the whole reply, and nothing computed off the lane
    assert order == ["embedded", "generated"]
    assert tokens_when_embedded < stats.tokens == LONG
    assert threads == {lm.lane.thread_ident}


# -- text assembly ------------------------------------------------------------------------
def test_text_assembler_never_splits_characters_and_cuts_at_stop(lm):
    text = "Café au lait costs 3€ 😀 — nice!\nNext: 日本語です. Done"
    ids = lm.tokenizer(text, add_special_tokens=False).input_ids

    whole = TextAssembler(lm.tokenizer)
    pieces = [whole.push(i) for i in ids] + [whole.finish()]
    stopped = TextAssembler(lm.tokenizer, ["costs", "#never#"])
    cut = "".join([stopped.push(i) for i in ids] + [stopped.finish()])

    assert "".join(pieces) == lm.tokenizer.decode(ids, skip_special_tokens=True)
    assert not any("\ufffd" in piece for piece in pieces)
    assert cut == "Café au lait " and stopped.stopped
