"""A bounded, fair admission gate in front of the chat LM's decode loop.

A slot is one sequence in the continuous batch (``ml.batch_decode``): ``max_concurrent``
bounds the batch, because every extra row makes each step slower for all the others
(on 2 CPU threads 8 rows decode at ~13 tokens/s each, still faster than anyone reads).
Requests beyond that queue in FIFO order. The queue itself is bounded: when it is full a
caller gets ``BusyError`` at once instead of waiting minutes, and the product can say
"try again shortly".

The gate is asyncio-facing but thread-safe: a slot is released from the compute lane's
thread when its sequence leaves the batch (so the slot is held exactly as long as the
compute is), and waiters on different event loops (an ASGI server's loop, a
``generate_text`` call's own loop) share one queue because every wake-up goes through
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

QueueCallback = Callable[[int], Awaitable[None] | None]


class BusyError(RuntimeError):
    """The gate's waiting queue is full; the caller should retry later.

    Attributes:
        waiting: how many requests were already waiting.
    """

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
        noun = "request is" if waiting == 1 else "requests are"
        super().__init__(f"the assistant is busy: {waiting} {noun} already waiting; try again shortly")


def _env_int(name: str, default: int) -> int:
    try:
        return max(0, int(os.environ.get(name, default)))
    except ValueError:
        return default


# Sequences decoding together. CPU: aggregate tokens/s still rose from 4 to 8 rows
# (65 -> 103 on 2 threads) while each stream kept ~13 tokens/s; beyond that a step costs
# more than it returns on 2 cores. GPU: a step of the 135M model is launch-bound, so 32
# rows cost about what one does; 32 x 2048 tokens of bf16 KV cache is ~1.5 GB.
CPU_CONCURRENCY = 8
GPU_CONCURRENCY = 32


def default_concurrency(is_gpu: bool = False) -> int:
    """``TRELLIS_LM_CONCURRENCY`` if set, else the device's default (see above)."""
    return max(1, _env_int("TRELLIS_LM_CONCURRENCY", GPU_CONCURRENCY if is_gpu else CPU_CONCURRENCY))


class _Waiter:
    """One queued acquire: the loop it waits on and the future that wakes it."""

    __slots__ = ("future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] | None = None
        self.granted = False


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class GenerationGate:
    """At most ``max_concurrent`` holders; at most ``max_waiting`` queued behind them.

    Args:
        max_concurrent: sequences that may decode at once (default: ``default_concurrency()``,
            the CPU figure; ``ChatLM`` passes its device's).
        max_waiting: queue length beyond which ``acquire`` raises ``BusyError``
            (``TRELLIS_LM_MAX_WAITING``, default 8 or ``max_concurrent`` if larger; 0
            means "never wait").
    """

    def __init__(self, max_concurrent: int | None = None, max_waiting: int | None = None) -> None:
        if max_concurrent is None:
            max_concurrent = default_concurrency()
        if max_waiting is None:
            max_waiting = _env_int("TRELLIS_LM_MAX_WAITING", max(8, max_concurrent))
        self.max_concurrent = max(1, max_concurrent)
        self.max_waiting = max(0, max_waiting)
        self._lock = threading.Lock()
        self._active = 0
        self._waiters: deque[_Waiter] = deque()
        self.rejected = 0  # BusyError count since start, for the product's stats page

    @property
    def active(self) -> int:
        """Slots held now."""
        with self._lock:
            return self._active

    @property
    def waiting(self) -> int:
        """Callers queued now."""
        with self._lock:
            return len(self._waiters)

    async def acquire(self, on_queued: QueueCallback | None = None) -> None:
        """Takes a slot, waiting in FIFO order if all are held.

        Args:
            on_queued: called with the caller's queue position (1 = next) when it has to
                wait, and again whenever that position improves; may be a coroutine
                function. It runs in the caller's own task.

        Raises:
            BusyError: ``max_waiting`` callers are already queued.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._active < self.max_concurrent and not self._waiters:
                self._active += 1
                return
            if len(self._waiters) >= self.max_waiting:
                self.rejected += 1
                raise BusyError(len(self._waiters))
            waiter = _Waiter(loop)
            self._waiters.append(waiter)
        reported = 0
        try:
            while True:
                with self._lock:
                    if waiter.granted:
                        return
                    position = self._waiters.index(waiter) + 1
                    # A fresh future per round: any grant or queue move after this check
                    # resolves it, so no wake-up is lost while the callback runs.
                    waiter.future = loop.create_future()
                    future = waiter.future
                if position != reported and on_queued is not None:
                    reported = position
                    result = on_queued(position)
                    if inspect.isawaitable(result):
                        await result
                    continue
                await future
        except BaseException:
            with self._lock:
                handed_over = waiter.granted
                if not handed_over:
                    self._waiters.remove(waiter)
                    self._notify_locked()
            if handed_over:  # granted as we were cancelled: pass the slot on, never leak it
                self.release()
            raise

    def release(self) -> None:
        """Frees a slot, handing it to the first live waiter; safe from any thread."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if waiter.loop.is_closed():
                    continue  # its loop is gone, so is its task: skip it
                waiter.granted = True
                self._wake_locked(waiter)
                self._notify_locked()
                return
            self._active = max(0, self._active - 1)

    @contextlib.asynccontextmanager
    async def slot(self, on_queued: QueueCallback | None = None) -> AsyncIterator[None]:
        """``async with gate.slot():`` acquire on entry, release on exit."""
        await self.acquire(on_queued)
        try:
            yield
        finally:
            self.release()

    def _notify_locked(self) -> None:
        """Wakes every waiter so it re-reads its (possibly improved) position."""
        for waiter in self._waiters:
            self._wake_locked(waiter)

    @staticmethod
    def _wake_locked(waiter: _Waiter) -> None:
        future = waiter.future
        if future is None or future.done():
            return
        with contextlib.suppress(RuntimeError):  # loop closed between check and call
            waiter.loop.call_soon_threadsafe(_resolve, future)
