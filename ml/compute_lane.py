"""One compute lane per process: the single thread on which all serving torch work runs.

On a CPU every thread that runs torch ops brings its own OpenMP team; two teams in one
process spin against each other (2-thread decoding fell from 22 to 15 tokens/s here when
a second thread computed). So a serving process runs embed, classify, LM prefill and LM
decode steps as jobs on one long-lived worker thread, in FIFO order. Jobs are short (one
decode step, one prefill chunk, one embed batch), so different kinds of work interleave
instead of one caller holding the cores for a whole generation.

Async callers ``await lane.call(fn, ...)`` (the event loop never blocks); threads use
``lane.run(fn, ...)`` (a Future) or ``lane.call_sync(fn, ...)``, which runs inline when it
is already on the lane (a job that calls another model) instead of deadlocking.

Celery tasks and scripts may keep calling the models' sync methods on their own thread:
they have no second computing thread to fight with.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import torch

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ["ComputeLane", "LaneClosedError", "default_lane", "reset_default_lane"]


class LaneClosedError(RuntimeError):
    """The lane was shut down; no more jobs run on it."""


class ComputeLane:
    """A FIFO of torch jobs run by one worker thread.

    Every job runs under ``torch.inference_mode()`` (thread-local, so it must be entered
    on the lane itself); models add their own autocast through
    ``ml.devices.inference_context`` because the right dtype differs per model (the chat LM
    decodes in fp32 on CPU while the encoders may autocast to bf16).

    Args:
        name: thread name (shows in ``py-spy`` and logs).
    """

    def __init__(self, name: str = "compute-lane") -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=self._bind)
        self._ident: int | None = None
        self._bound = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._waiting = 0  # jobs queued and not yet started
        self.jobs_run = 0  # jobs finished since start (tests, stats)

    # -- thread identity -------------------------------------------------------------
    def _bind(self) -> None:
        self._ident = threading.get_ident()
        self._bound.set()

    @property
    def thread_ident(self) -> int:
        """``threading.get_ident()`` of the lane thread (starts it if needed)."""
        if self._ident is None:
            self.run(lambda: None).result()
        assert self._ident is not None  # noqa: S101 - set by the initializer before any job
        return self._ident

    @property
    def waiting(self) -> int:
        """Jobs queued behind the running one (a batcher yields to them instead of idling)."""
        return self._waiting

    def on_lane(self) -> bool:
        """True when called from the lane thread itself."""
        return self._ident is not None and threading.get_ident() == self._ident

    # -- submitting ------------------------------------------------------------------
    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queues ``fn(*args, **kwargs)`` behind the jobs already waiting.

        Returns:
            A Future with the result or the exception.

        Raises:
            LaneClosedError: the lane was shut down.
        """
        job = functools.partial(self._job, fn, *args, **kwargs)
        with self._lock:
            if self._closed:
                raise LaneClosedError(f"compute lane {self.name!r} is shut down")
            try:
                future = self._executor.submit(job)
            except RuntimeError as exc:  # interpreter shutting down
                raise LaneClosedError(str(exc)) from exc
            self._waiting += 1
        # A job cancelled before it started never runs ``_job``: stop counting it here.
        future.add_done_callback(self._forget_if_cancelled)
        return future

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs ``fn`` on the lane and awaits its result without blocking the event loop.

        Cancelling the awaiting task cancels a job that has not started yet; a running job
        runs to its end (torch cannot be interrupted) and its result is dropped.
        """
        if self.on_lane():
            raise RuntimeError("lane.call() awaited on the lane thread itself; use call_sync() there")
        return await asyncio.wrap_future(self.run(fn, *args, **kwargs))

    def call_sync(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs ``fn`` on the lane and blocks for its result; inline when already on it."""
        if self.on_lane():
            return fn(*args, **kwargs)
        return self.run(fn, *args, **kwargs).result()

    def _forget_if_cancelled(self, future: Future[Any]) -> None:
        if future.cancelled():
            with self._lock:
                self._waiting -= 1

    def _job(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            self._waiting -= 1
        try:
            with torch.inference_mode():
                return fn(*args, **kwargs)
        finally:
            self.jobs_run += 1  # only the lane thread writes it

    # -- lifecycle -------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def shutdown(self, wait: bool = True) -> None:
        """Stops taking jobs; queued jobs still run (``wait`` blocks until they have)."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=wait and not self.on_lane())

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"ComputeLane({self.name!r}, {state}, jobs_run={self.jobs_run})"


_default: ComputeLane | None = None
_default_lock = threading.Lock()


def default_lane() -> ComputeLane:
    """The process-wide lane, created on first use."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = ComputeLane()
        return _default


def reset_default_lane() -> None:
    """Forgets the process-wide lane; the next ``default_lane()`` builds a fresh one."""
    global _default
    with _default_lock:
        _default = None


def _after_fork_in_child() -> None:
    # A forked child (Celery prefork, gunicorn) inherits the lane object but not its
    # thread, so jobs queued on it would never run; the lock may have been held mid-fork.
    global _default, _default_lock
    _default, _default_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
