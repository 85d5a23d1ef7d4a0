"""A client-side request rate limit shared by every hook and thread of the process.

Butlr does not publish its rate limits (about 50 requests per minute for REST is the working
estimate); a connection extra ``max_requests_per_minute`` turns this limit on. One
:class:`RateLimiter` exists per key (API origin + credentials), so every hook, export worker thread
and the async hook of one connection draw from the same allowance.

The limiter is a token bucket whose tokens come back one minute after they were spent (a rolling
window): at most ``per_minute`` requests start in any 60 seconds, and a burst of up to
``per_minute`` requests goes out at once. Unlike a bucket refilled at a steady rate, it never lets
``2 x per_minute`` requests into one rolling minute, so a server counting per minute is never
tripped. Each caller reserves its slot under a lock and then waits outside it (first come, first
served; no busy loop).

A server counts a request when it arrives, which is some time between its send and its answer
(latency, queueing behind other requests). So a request sent through :meth:`RateLimiter.sending`
gives its slot back one minute after its *answer*: the next request that takes the slot reaches
the server more than a minute after the one before it, however late that one was counted.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from airflow_provider_butlr.client.messages import Answer
from airflow_provider_butlr.client.retry import parse_retry_after
from airflow_provider_butlr.client.settings import ButlrSettings

WINDOW_SECONDS = 60.0
MAX_HOLD = 3600.0  # the longest hold whatever a caller asks (the largest retry_after_cap a hook accepts)


class _Slot:
    """One booked request: when it started, then (once answered) when its answer came."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at


class RateLimiter:
    """At most ``per_minute`` acquisitions in any rolling minute; :meth:`acquire` waits for a slot."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: deque[_Slot] = deque()  # the last ``per_minute`` requests, in booking order
        self._not_before = 0.0
        self.per_minute = per_minute
        self.set_rate(per_minute)

    def set_rate(self, per_minute: int) -> None:
        if not isinstance(per_minute, int) or isinstance(per_minute, bool) or per_minute < 1:
            raise ValueError(f"max_requests_per_minute must be a positive integer, got {per_minute!r}")
        with self._lock:
            self.per_minute = per_minute
            while len(self._slots) > per_minute:
                self._slots.popleft()

    def _book(self) -> tuple[float, _Slot]:
        with self._lock:
            now = self._clock()
            at = max(now, self._not_before)
            if len(self._slots) >= self.per_minute:
                at = max(at, self._slots.popleft().at + WINDOW_SECONDS)
            if self._slots and at < self._slots[-1].at:
                at = self._slots[-1].at
            slot = _Slot(at)
            self._slots.append(slot)
            return at - now, slot

    def _answered(self, slot: _Slot) -> None:
        with self._lock:
            slot.at = max(slot.at, self._clock())

    def reserve(self) -> float:
        """Book the next slot; the seconds to wait before sending (0 when one is free now)."""
        return self._book()[0]

    def acquire(self) -> float:
        """Wait (sleeping) until this request may be sent; the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
        return max(delay, 0.0)

    async def aacquire(self) -> float:
        """:meth:`acquire` for the async hook (awaits instead of sleeping)."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        return max(delay, 0.0)

    @contextmanager
    def sending(self) -> Iterator[float]:
        """Wait for a slot, send in the block; the slot comes back a minute after the block ends."""
        delay, slot = self._book()
        if delay > 0:
            self._sleep(delay)
        try:
            yield max(delay, 0.0)
        finally:
            self._answered(slot)

    @asynccontextmanager
    async def asending(self) -> AsyncIterator[float]:
        """:meth:`sending` for the async hook."""
        delay, slot = self._book()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            yield max(delay, 0.0)
        finally:
            self._answered(slot)

    def hold(self, seconds: float) -> None:
        """No new request starts within ``seconds`` (a server's ``Retry-After``, for every caller);
        at most :data:`MAX_HOLD` seconds, and a non-finite value holds nothing."""
        if not math.isfinite(seconds):
            return
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + min(max(0.0, seconds), MAX_HOLD))


_LIMITERS: dict[str, RateLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def limiter_for(key: str, per_minute: int | None) -> RateLimiter | None:
    """The process-wide limiter of ``key`` (API origin + credentials key), or None when off.

    The first call for a key creates it; a later call with another ``per_minute`` changes its rate.
    """
    if per_minute is None or per_minute == 0:
        return None
    with _REGISTRY_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = RateLimiter(per_minute)
        elif limiter.per_minute != per_minute:
            limiter.set_rate(per_minute)
        return limiter


def clear() -> None:
    """Forget every limiter (tests)."""
    with _REGISTRY_LOCK:
        _LIMITERS.clear()


def limiter(settings: ButlrSettings) -> RateLimiter | None:
    """The process-wide limiter of this connection's credentials (None: extra max_requests_per_minute unset)."""
    if not settings.max_requests_per_minute:
        return None
    return limiter_for(settings.limiter_key, settings.max_requests_per_minute)


def pace_after(answer: Answer, rate: RateLimiter | None, cap: float) -> Answer:
    """A 429 with ``Retry-After`` pauses every caller sharing the limiter, not only this one, for as
    long as the retry waits: the header's seconds, at most ``cap`` (the hook's ``retry_after_cap``)."""
    if rate is not None and answer.status == 429:
        seconds = parse_retry_after(answer.headers.get("Retry-After"))
        if seconds:
            rate.hold(min(seconds, cap))
    return answer
