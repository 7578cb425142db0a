"""The compute lane: one thread for all torch work, async-friendly, no self-deadlock."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from ml.compute_lane import ComputeLane, LaneClosedError, default_lane, reset_default_lane


@pytest.fixture
def lane():
    lane = ComputeLane("test-lane")
    yield lane
    lane.shutdown()


def test_every_job_runs_on_the_same_thread_in_inference_mode(lane):
    # given jobs submitted from the test thread and from other threads
    seen: list[tuple[int, bool]] = []

    def job() -> None:
        seen.append((threading.get_ident(), torch.is_inference_mode_enabled()))

    futures = [lane.run(job) for _ in range(3)]
    threads = [threading.Thread(target=lambda: lane.run(job).result()) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for future in futures:
        future.result()

    # then all ran on the lane thread, none on the callers', all in inference mode
    assert {ident for ident, _ in seen} == {lane.thread_ident}
    assert lane.thread_ident != threading.get_ident()
    assert all(inference for _, inference in seen)
    assert lane.jobs_run >= 6


def test_call_sync_on_the_lane_runs_inline_instead_of_deadlocking(lane):
    def inner() -> int:
        return threading.get_ident()

    def outer() -> tuple[int, int]:
        return threading.get_ident(), lane.call_sync(inner)  # would wait for itself if queued

    outer_ident, inner_ident = lane.run(outer).result(timeout=10)

    assert outer_ident == inner_ident == lane.thread_ident
    assert lane.call_sync(inner) == lane.thread_ident  # from outside: queued, same thread


def test_await_call_does_not_block_the_event_loop(lane):
    # given a lane job that waits for a signal the event loop itself sends
    release = threading.Event()

    async def scenario() -> tuple[str, list[str]]:
        order: list[str] = []

        async def ticker() -> None:
            order.append("loop ran while the job waited")
            release.set()

        job = asyncio.create_task(lane.call(lambda: release.wait(10) and "done"))
        await asyncio.sleep(0)
        await ticker()
        return await job, order

    result, order = asyncio.run(scenario())

    assert result == "done"
    assert order == ["loop ran while the job waited"]


def test_errors_reach_the_caller_and_the_lane_keeps_working(lane):
    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        asyncio.run(lane.call(boom))
    assert lane.call_sync(lambda: 41 + 1) == 42


def test_waiting_counts_queued_jobs_and_forgets_cancelled_ones(lane):
    started, gate = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        gate.wait(10)

    running = lane.run(block)
    assert started.wait(10)
    queued = [lane.run(lambda: None) for _ in range(3)]
    assert queued[0].cancel()  # not started yet: cancellable

    waiting_then = lane.waiting
    gate.set()
    running.result()
    for future in queued[1:]:
        future.result()

    assert waiting_then == 2
    assert lane.waiting == 0


def test_shut_down_lane_refuses_jobs(lane):
    lane.shutdown()
    with pytest.raises(LaneClosedError):
        lane.run(lambda: None)


def test_default_lane_is_process_wide_and_rebuilt_after_reset(monkeypatch):
    from ml import compute_lane

    first = default_lane()
    monkeypatch.setattr(compute_lane, "_default", first)  # restored after the test
    assert default_lane() is first
    reset_default_lane()
    second = default_lane()
    try:
        assert second is not first
        assert second.call_sync(threading.get_ident) == second.thread_ident != first.thread_ident
    finally:
        second.shutdown()
