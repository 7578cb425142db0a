"""Dynamic batching: concurrent requests share lane jobs, results split back, failures isolated."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from ml.compute_lane import ComputeLane
from ml.dynamic_batch import MicroBatcher, check_texts


@pytest.fixture
def lane():
    lane = ComputeLane("test-batch-lane")
    yield lane
    lane.shutdown()


class Recorder:
    """A batch function that records every call (one call = one forward pass)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.threads: set[int] = set()
        self.fail_on = fail_on

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.threads.add(threading.get_ident())
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError(f"cannot handle {self.fail_on!r}")
        return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32).reshape(len(texts), 2)


def _gather(batcher: MicroBatcher, requests: list[list[str]]) -> list:
    async def scenario() -> list:
        return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)

    return asyncio.run(scenario())


def test_concurrent_single_text_requests_share_passes_and_get_their_own_rows(lane):
    # given 16 requests of one text each, arriving together
    fn = Recorder()
    batcher = MicroBatcher(fn, lane=lane, max_texts=64, max_wait_ms=50)
    texts = [f"text number {i:02d}" + "!" * i for i in range(16)]

    results = _gather(batcher, [[t] for t in texts])

    # then far fewer than 16 passes ran, all on the lane, and each caller got its own row
    assert batcher.stats.batches < 16
    assert len(fn.calls) == batcher.stats.batches
    assert batcher.stats.texts == 16 and batcher.stats.requests == 16
    assert fn.threads == {lane.thread_ident}
    for text, result in zip(texts, results, strict=True):
        assert result.shape == (1, 2)
        assert result[0, 0] == len(text)


def test_batches_hold_at_most_max_texts_and_large_requests_run_alone(lane):
    fn = Recorder()
    batcher = MicroBatcher(fn, lane=lane, max_texts=4, max_wait_ms=50)

    results = _gather(batcher, [["a"], ["bb", "cc"], ["ddd"], ["e"], ["f" * 6] * 9])

    assert all(len(call) <= 4 for call in fn.calls if len(call) != 9)
    assert [9] == [len(call) for call in fn.calls if len(call) == 9]  # the big one, alone
    assert [r.shape[0] for r in results] == [1, 2, 1, 1, 9]
    assert results[1][:, 0].tolist() == [2, 2]
    assert results[4][:, 0].tolist() == [6] * 9


def test_a_malformed_request_fails_alone_before_batching(lane):
    fn = Recorder()
    batcher = MicroBatcher(fn, lane=lane, max_wait_ms=50)

    results = _gather(batcher, [["fine"], "one string", ["ok", 3], ["also fine"]])

    assert isinstance(results[1], TypeError) and "one string" in str(results[1])
    assert isinstance(results[2], TypeError) and "text 1 is a int" in str(results[2])
    assert results[0][0, 0] == 4 and results[3][0, 0] == 9
    assert all("one string" not in call for call in fn.calls)


def test_a_request_that_breaks_the_batch_fails_alone(lane):
    # given a batch function that raises on one text, and three requests queued behind a
    # busy lane (so that they surely land in one batch)
    fn = Recorder(fail_on="poison")
    batcher = MicroBatcher(fn, lane=lane, max_wait_ms=50)
    busy = threading.Event()
    blocker = lane.run(busy.wait, 10)

    async def scenario() -> list:
        pending = [asyncio.ensure_future(batcher.submit(r)) for r in (["good one"], ["poison"], ["good two"])]
        await asyncio.sleep(0.01)
        busy.set()
        return await asyncio.gather(*pending, return_exceptions=True)

    results = asyncio.run(scenario())
    blocker.result()

    # then the others still get their rows; only the culprit gets the error
    assert isinstance(results[1], RuntimeError) and "poison" in str(results[1])
    assert results[0][0, 0] == 8 and results[2][0, 0] == 8
    assert fn.calls[0] == ["good one", "poison", "good two"]  # tried together first
    assert batcher.stats.retried_batches == 1


def test_validate_hook_refuses_before_any_pass(lane):
    def no_empty(texts: list[str]) -> None:
        if any(not t for t in texts):
            raise ValueError("empty text")

    fn = Recorder()
    batcher = MicroBatcher(fn, lane=lane, validate=no_empty)

    with pytest.raises(ValueError, match="empty text"):
        asyncio.run(batcher.submit(["x", ""]))
    assert fn.calls == []


def test_check_texts_accepts_sequences_only():
    assert check_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(TypeError, match="not one string"):
        check_texts("abc")
    with pytest.raises(TypeError, match="sequence"):
        check_texts({"a"})  # type: ignore[arg-type]


# -- real models ----------------------------------------------------------------------
def test_aembed_batches_concurrent_callers_and_matches_embed(embedder, monkeypatch, lane):
    monkeypatch.setattr(embedder, "lane", lane)
    texts = [f"Where is my order number {i}?" for i in range(16)]
    before = embedder.batch_stats().batches

    async def scenario() -> list[np.ndarray]:
        return await asyncio.gather(*(embedder.aembed([t]) for t in texts))

    vectors = asyncio.run(scenario())

    passes = embedder.batch_stats().batches - before
    assert passes < 16
    expected = embedder.embed(texts)
    for got, want in zip(vectors, expected, strict=True):
        assert got.shape == (1, embedder.dim)
        np.testing.assert_allclose(got[0], want, atol=1e-4)


def test_apredict_batches_and_matches_predict(registry, monkeypatch, lane):
    classifier = registry.get("sentiment")
    monkeypatch.setattr(classifier, "lane", lane)
    texts = ["Shares soared after record profits.", "The company went bankrupt.", "Markets were flat."] * 3

    async def scenario() -> list:
        return await asyncio.gather(*(classifier.apredict([t]) for t in texts))

    got = [p[0] for p in asyncio.run(scenario())]
    want = classifier.predict(texts)

    assert classifier.batch_stats().batches < len(texts)
    assert [p.label for p in got] == [p.label for p in want]
    assert max(abs(a.confidence - b.confidence) for a, b in zip(got, want, strict=True)) < 1e-4
