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
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


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
        self._slots: deque[float] = deque()  # start times of the last ``per_minute`` requests
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

    def reserve(self) -> float:
        """Book the next slot; the seconds to wait before sending (0 when one is free now)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._not_before)
            if len(self._slots) >= self.per_minute:
                slot = max(slot, self._slots.popleft() + WINDOW_SECONDS)
            if self._slots and slot < self._slots[-1]:
                slot = self._slots[-1]
            self._slots.append(slot)
            return slot - now

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

    def hold(self, seconds: float) -> None:
        """No new request starts within ``seconds`` (a server's ``Retry-After``, for every caller)."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + max(0.0, seconds))


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
