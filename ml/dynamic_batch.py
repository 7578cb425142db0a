"""Dynamic batching of embed and classify requests on the compute lane.

Sixteen requests of one text each cost sixteen forward passes when each runs on its own,
but one pass when they run together (MiniLM on CPU: ~5-10 ms for one short text, ~30 ms
for sixteen). A ``MicroBatcher`` coalesces requests that arrive together into one lane
job and splits the result back per request:

- requests queue in a pending list; the first one queues a *drain* job on the lane;
- the drain takes what is pending when it **runs**, not when it was queued, so requests
  that arrive while the lane is busy (a decode step, another batch) join for free;
- if it would run a batch smaller than ``max_texts`` before the oldest request has waited
  ``max_wait_ms``, it first lets other queued lane jobs go (re-queueing itself behind
  them) or, on an idle lane, waits for more requests up to that deadline, but no longer
  than 1 ms after the newest one (a burst has landed by then).

``max_texts`` (default 64, ``TRELLIS_BATCH_MAX_TEXTS``): one batch of 64 short texts is
~0.13 s of MiniLM on 2 CPU threads, so a decode step never waits longer than that behind
one batch; on CPU the model still runs it in passes of 16 (``CPU_MICRO_BATCH``). Larger
requests gain nothing from coalescing and run alone. ``max_wait_ms`` (default 5,
``TRELLIS_BATCH_WAIT_MS``): at most about one single-text pass added to a lone request's
latency, while a burst that arrives within the same few ms shares one pass.

Inputs are validated before they join a batch, so a bad request fails alone; if a batch
still raises, its requests are retried one by one so only the culprit gets the error.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from ml.compute_lane import ComputeLane, default_lane

__all__ = ["BatchStats", "MicroBatcher", "batcher_of", "check_texts"]

R = TypeVar("R", np.ndarray, list[Any])
QUIET_GAP_S = 0.001  # see _drain


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value >= 0 else default


def check_texts(texts: Sequence[str]) -> list[str]:
    """A list copy of ``texts``, or a TypeError naming what is wrong.

    Raises:
        TypeError: ``texts`` is one string, not a sequence, or holds a non-string.
    """
    if isinstance(texts, str | bytes):
        raise TypeError("expected a sequence of texts, not one string")
    if not isinstance(texts, Sequence):
        raise TypeError(f"expected a sequence of texts, got {type(texts).__name__}")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is a {type(text).__name__}, not a string")
    return out


@dataclass
class BatchStats:
    """Counters since start.

    Attributes:
        batches: calls of the batch function (forward passes of coalesced requests).
        requests: requests answered (successfully or not).
        texts: texts passed to the batch function.
        retried_batches: batches that raised and were retried request by request.
    """

    batches: int = 0
    requests: int = 0
    texts: int = 0
    retried_batches: int = 0


@dataclass(eq=False)
class _Request:
    texts: list[str]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    arrived: float  # time.monotonic()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class MicroBatcher(Generic[R]):
    """Coalesces concurrent calls of ``fn(texts)`` into batched lane jobs.

    Args:
        fn: runs one batch on the lane; returns one row (array row or list item) per text.
        lane: the lane, or a callable returning it (None: the process-wide lane).
        max_texts: texts per batch (see module notes); ``TRELLIS_BATCH_MAX_TEXTS``.
        max_wait_ms: longest wait for company (see module notes); ``TRELLIS_BATCH_WAIT_MS``.
        validate: checks one request's texts before it joins a batch (raise to refuse);
            ``check_texts`` runs first in any case.
    """

    def __init__(
        self,
        fn: Callable[[list[str]], R],
        *,
        lane: ComputeLane | Callable[[], ComputeLane | None] | None = None,
        max_texts: int | None = None,
        max_wait_ms: float | None = None,
        validate: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.fn: Callable[[list[str]], R] = fn
        self._lane = lane
        self.max_texts = max(1, int(max_texts if max_texts is not None else _env_number("TRELLIS_BATCH_MAX_TEXTS", 64)))
        wait_ms = max_wait_ms if max_wait_ms is not None else _env_number("TRELLIS_BATCH_WAIT_MS", 5.0)
        self.max_wait_s = max(0.0, wait_ms) / 1000
        self.validate = validate
        self.stats = BatchStats()
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._pending_texts = 0
        self._drain_queued = False

    @property
    def lane(self) -> ComputeLane:
        lane = self._lane() if callable(self._lane) and not isinstance(self._lane, ComputeLane) else self._lane
        return lane if lane is not None else default_lane()

    async def submit(self, texts: Sequence[str]) -> R:
        """Runs ``fn`` over ``texts`` as part of a batch; returns this request's rows.

        Raises:
            TypeError: ``texts`` is malformed (nothing ran).
            Exception: whatever ``validate`` or ``fn`` raised for this request.
        """
        items = check_texts(texts)
        if self.validate is not None:
            self.validate(items)
        if len(items) > self.max_texts:  # nothing to gain from company: run it alone
            return await self.lane.call(self._run_alone, items)
        loop = asyncio.get_running_loop()
        request = _Request(items, loop, loop.create_future(), time.monotonic())
        with self._cond:
            self._pending.append(request)
            self._pending_texts += len(items)
            queue_drain = not self._drain_queued
            self._drain_queued = True
            self._cond.notify()
        if queue_drain:
            try:
                self.lane.run(self._drain)
            except BaseException:
                with self._cond:
                    self._drain_queued = False
                    self._remove(request)
                raise
        try:
            return await request.future
        except asyncio.CancelledError:
            with self._cond:
                self._remove(request)
            raise

    def _remove(self, request: _Request) -> None:
        if request in self._pending:
            self._pending.remove(request)
            self._pending_texts -= len(request.texts)

    # -- lane side -------------------------------------------------------------------
    def _drain(self) -> None:
        lane = self.lane
        with self._cond:
            while self._pending and self._pending_texts < self.max_texts:
                now = time.monotonic()
                remaining = self._pending[0].arrived + self.max_wait_s - now
                if remaining <= 0:
                    break
                if lane.waiting > 0:  # others are queued: go behind them rather than idle
                    lane.run(self._drain)
                    return
                # A burst from one event loop lands within a fraction of a millisecond: once
                # nothing new has come for QUIET_GAP_S, waiting longer only adds latency.
                quiet = self._pending[-1].arrived + min(QUIET_GAP_S, self.max_wait_s) - now
                if quiet <= 0:
                    break
                self._cond.wait(min(remaining, quiet))
            batch: list[_Request] = []
            size = 0
            while self._pending and (not batch or size + len(self._pending[0].texts) <= self.max_texts):
                request = self._pending.pop(0)
                batch.append(request)
                size += len(request.texts)
            self._pending_texts -= size
            if self._pending:
                lane.run(self._drain)  # the rest have waited long enough: straight after
            else:
                self._drain_queued = False
        if batch:
            self._run_batch(batch)

    def _run_alone(self, texts: list[str]) -> R:
        self.stats.batches += 1
        self.stats.requests += 1
        self.stats.texts += len(texts)
        return self._call(texts)

    def _call(self, texts: list[str]) -> R:
        out = self.fn(texts)
        if len(out) != len(texts):
            raise RuntimeError(f"batch function returned {len(out)} rows for {len(texts)} texts")
        return out

    def _run_batch(self, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.texts += len(texts)
        try:
            out = self._call(texts)
        except Exception as exc:  # noqa: BLE001 - delivered to the requests, not lost
            if len(batch) == 1:
                self._deliver(batch[0], None, exc)
                return
            self.stats.retried_batches += 1
            for request in batch:  # find the culprit: the others still get their rows
                self.stats.batches += 1
                self.stats.texts += len(request.texts)
                try:
                    self._deliver(request, self._call(request.texts), None)
                except Exception as one_exc:  # noqa: BLE001
                    self._deliver(request, None, one_exc)
            return
        start = 0
        for request in batch:
            end = start + len(request.texts)
            self._deliver(request, out[start:end], None)
            start = end

    @staticmethod
    def _deliver(request: _Request, result: Any, error: BaseException | None) -> None:
        try:
            request.loop.call_soon_threadsafe(_settle, request.future, result, error)
        except RuntimeError:  # its event loop is closed: nobody is waiting any more
            pass


_lazy_lock = threading.Lock()


def batcher_of(owner: Any, fn: Callable[[list[str]], R], *, attr: str = "_micro_batcher") -> MicroBatcher[R]:
    """The ``MicroBatcher`` of ``owner`` (a model), created on first use.

    Its lane is read from ``owner.lane`` at each call (None: the process-wide lane), so a
    test can point a model at its own lane.
    """
    batcher = owner.__dict__.get(attr)
    if batcher is None:
        with _lazy_lock:
            batcher = owner.__dict__.get(attr)
            if batcher is None:
                batcher = MicroBatcher(fn, lane=lambda: getattr(owner, "lane", None))
                owner.__dict__[attr] = batcher
    return batcher
