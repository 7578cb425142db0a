"""Per-token rate limits of the inference endpoints (DRF scoped throttles), checked on the event loop.

Each endpoint has a scope (``serving_embeddings``, ``serving_chat``, ``serving_classify``)
whose rate comes from the environment (see config/settings.py); a caller is its API token,
or its user for session callers, so two tokens of one user are counted apart. Counts live
in the shared throttle cache (Redis, or a database table), so every server process sees
the same ones, in DRF's format (a list of request times, newest first, per key).

DRF's own check reads and writes that cache on every request: on the embedded default that
is a database connection and three queries per request, in a worker thread. The inference
views call ``aallow_request`` instead, which keeps a window per key in this process:

- a decision needs no I/O: it counts the times last read from the shared cache plus this
  process's requests since, exactly as DRF would (same limit, same ``Retry-After``);
- at most every ``SYNC_INTERVAL_S`` seconds, on a request, the window is exchanged with the
  shared cache in one worker-thread hop: this process's new request times are added to it
  and the other processes' are read back. The first request of a key in a process reads it
  first, so a caller already over its limit elsewhere is refused at once;
- so within one process the limit is exact (DRF's read-then-write could lose counts between
  threads); across processes, each sees the others' requests at most ``SYNC_INTERVAL_S``
  late, and a caller spreading requests over several processes can exceed the limit by at
  most what one process accepted from it in that interval, per process.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import caches
from rest_framework.throttling import ScopedRateThrottle

from apps.accounts.throttling import SharedCacheMixin

SYNC_INTERVAL_S = 0.5  # how late a process sees the other processes' requests (seconds)
MAX_WINDOWS = 10_000  # keys remembered per process; the least recently used go first
THROTTLE_CACHE = "throttle"  # the cache alias of SharedCacheMixin
clock = time.monotonic  # of the exchanges (request times are DRF's ``timer``, wall clock)


@dataclass(eq=False)
class _Window:
    """One key's request times (``time.time()``, newest first) as this process knows them."""

    key: str
    shared: list[float] = field(default_factory=list)  # read from the shared cache at the last exchange
    writing: list[float] = field(default_factory=list)  # this process's, being written now
    local: list[float] = field(default_factory=list)  # this process's, not yet written
    synced_at: float = float("-inf")  # clock() of the last exchange
    refreshing: bool = False
    sync_lock: threading.Lock = field(default_factory=threading.Lock)  # one exchange at a time

    def count(self, since: float) -> int:
        """How many times are after ``since`` (a binary search per list: each is newest first)."""
        return sum(bisect.bisect_left(times, -since, key=_negated) for times in (self.local, self.writing, self.shared))

    def history(self, since: float) -> list[float]:
        """The times after ``since``, newest first (DRF's ``history``, for ``wait()``)."""
        times = [t for t in (*self.local, *self.writing, *self.shared) if t > since]
        times.sort(reverse=True)
        return times


def _negated(value: float) -> float:
    return -value


_windows: OrderedDict[str, _Window] = OrderedDict()
_lock = threading.Lock()  # guards _windows and every window's lists (short sections only)


def _window(key: str) -> _Window:
    with _lock:
        window = _windows.get(key)
        if window is None:
            window = _windows[key] = _Window(key)
            while len(_windows) > MAX_WINDOWS:
                _windows.popitem(last=False)
        else:
            _windows.move_to_end(key)
        return window


def throttle_windows_clear() -> None:
    """Forgets this process's windows (tests: with the shared cache cleared)."""
    with _lock:
        _windows.clear()


def _exchange(window: _Window, duration: float, requested_at: float) -> None:
    """Writes this process's new request times to the shared cache and reads everyone's back
    (in a worker thread: the cache may be a database table)."""
    with window.sync_lock:
        if window.synced_at >= requested_at:
            return  # another request refreshed it while this one waited
        with _lock:
            batch, window.local = window.local, []
            window.writing = batch
        try:
            cache = caches[THROTTLE_CACHE]
            now = time.time()
            merged = sorted([*cache.get(window.key, []), *batch], reverse=True)
            merged = [t for t in merged if t > now - duration]
            if batch:
                cache.set(window.key, merged, duration)
        except BaseException:
            with _lock:
                window.local, window.writing = [*window.local, *batch], []
            raise
        with _lock:
            window.shared, window.writing = merged, []
            window.synced_at = clock()


async def _refresh(window: _Window, duration: float) -> None:
    """Exchanges a window that is cold (never read here) or older than ``SYNC_INTERVAL_S``.

    A cold window is awaited by every request that finds it (they need the shared counts
    before deciding); a warm one by the first request only, the others decide on what it
    holds meanwhile.
    """
    now = clock()
    with _lock:
        cold = window.synced_at == float("-inf")
        if not cold and (now - window.synced_at <= SYNC_INTERVAL_S or window.refreshing):
            return
        window.refreshing = True
    try:
        await sync_to_async(_exchange)(window, duration, now)
    finally:
        with _lock:
            window.refreshing = False


class ServingRateThrottle(SharedCacheMixin, ScopedRateThrottle):
    def get_cache_key(self, request: Any, view: Any) -> str | None:
        user = request.user
        if not (user and user.is_authenticated):
            ident = self.get_ident(request)
        elif getattr(request.auth, "pk", None) is not None:
            # A digest, never the raw key, in a cache key (DRF's Token pk *is* the key).
            ident = "token-" + hashlib.sha256(str(request.auth.pk).encode()).hexdigest()[:32]
        else:
            ident = f"user-{user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    async def aallow_request(self, request: Any, view: Any) -> bool:
        """``allow_request`` on the event loop (see the module notes); ``wait()`` works after it."""
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        window = _window(self.key)
        await _refresh(window, self.duration)
        self.now = self.timer()
        since = self.now - self.duration
        with _lock:
            if window.count(since) >= self.num_requests:
                self.history = window.history(since)
                return self.throttle_failure()
            window.local.insert(0, self.now)
        return True
