"""The client-side request rate limit of a connection's credentials: per process, per host or per
deployment (:func:`limiter` chooses).

Butlr does not publish its rate limits (about 50 requests per minute for REST is the working
estimate); a connection extra ``max_requests_per_minute`` turns this limit on. Every hook, export
worker thread, task process and the triggerer of one host draw from one allowance (a window file
in the token store's directory, :mod:`.limits.host`); with the extra ``redis_conn_id``, every host
of the deployment does (:mod:`.limits.redis_limiter`). The process's own :class:`RateLimiter` stands
in while neither can be reached.

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

import secrets
import threading
import time
from collections.abc import Callable

from airflow_provider_butlr.client.limits.base import BookingLimiter, SharedLimiter
from airflow_provider_butlr.client.limits.host import HostLimiter
from airflow_provider_butlr.client.limits.redis_backend import RedisConfig
from airflow_provider_butlr.client.limits.redis_limiter import RedisLimiter
from airflow_provider_butlr.client.limits.window import Window, hold_seconds
from airflow_provider_butlr.client.messages import Answer
from airflow_provider_butlr.client.retry import parse_retry_after
from airflow_provider_butlr.client.settings import ButlrSettings
from airflow_provider_butlr.client.tokens.fernet import key_digest
from airflow_provider_butlr.client.tokens.stores import host_store, token_directory


class RateLimiter(BookingLimiter):
    """At most ``per_minute`` requests in any rolling minute of this process; :meth:`acquire` waits."""

    scope = "process"

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
        self._window = Window()
        self.per_minute = per_minute
        self.set_rate(per_minute)

    def set_rate(self, per_minute: int) -> None:
        if not isinstance(per_minute, int) or isinstance(per_minute, bool) or per_minute < 1:
            raise ValueError(f"max_requests_per_minute must be a positive integer, got {per_minute!r}")
        with self._lock:
            self.per_minute = per_minute
            del self._window.slots[:-per_minute]

    def book(self) -> tuple[float, int]:
        slot = secrets.randbits(63)
        with self._lock:
            now = self._clock()
            return self._window.book(slot, now, self.per_minute) - now, slot

    def answered(self, slot: int) -> None:
        with self._lock:
            self._window.answered(slot, self._clock())

    def hold(self, seconds: float) -> None:
        """No new request starts within ``seconds`` (a server's ``Retry-After``, for every caller);
        at most :data:`MAX_HOLD` seconds, and a non-finite value holds nothing."""
        bounded = hold_seconds(seconds)
        if bounded is not None:
            with self._lock:
                self._window.hold(self._clock() + bounded)

    async def abook(self) -> tuple[float, int]:
        return self.book()  # in memory: no thread needed

    async def aanswered(self, slot: int) -> None:
        self.answered(slot)

    async def ahold(self, seconds: float) -> None:
        self.hold(seconds)


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


_SHARED: dict[tuple[str, str, RedisConfig | None], BookingLimiter] = {}


def clear() -> None:
    """Forget every limiter (tests)."""
    with _REGISTRY_LOCK:
        _LIMITERS.clear()
        _SHARED.clear()


def limiter(settings: ButlrSettings, redis: RedisConfig | None = None) -> BookingLimiter | None:
    """The limiter of this connection's credentials; None (no cost at all) when the extra
    ``max_requests_per_minute`` is unset.

    The limit holds for the whole deployment through Redis (``redis``: the connection of the extra
    ``redis_conn_id``), else for the host through a file in the token store's directory, and for
    this process alone only while neither can be reached.
    """
    per_minute = settings.max_requests_per_minute
    if not per_minute:
        return None
    process = limiter_for(settings.limiter_key, per_minute)
    assert process is not None
    directory = token_directory(settings)
    key = (settings.limiter_key, str(directory), redis)
    with _REGISTRY_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            store = host_store(directory)
            name = f"{key_digest(settings.cache_key)}.rate"
            shared = HostLimiter(lambda: store.open_record(name), per_minute, process)
            if redis is not None:
                shared = RedisLimiter(redis, settings.limiter_key, per_minute, shared)
            _SHARED[key] = shared
        layer: BookingLimiter | None = shared
        while isinstance(layer, SharedLimiter):  # a changed limit applies at once, at every level
            layer.per_minute = per_minute
            layer = layer.fallback
        return shared


def _hold_for(answer: Answer, cap: float) -> float | None:
    """The hold a 429 asks for: its ``Retry-After`` seconds, at most ``cap``; None for anything else."""
    if answer.status != 429:
        return None
    seconds = parse_retry_after(answer.headers.get("Retry-After"))
    return min(seconds, cap) if seconds else None


def pace_after(answer: Answer, rate: BookingLimiter | None, cap: float) -> Answer:
    """A 429 with ``Retry-After`` pauses every caller sharing the limiter (every process of the host,
    or every host), not only this one, for as long as the retry waits: the header's seconds, at most
    ``cap`` (the hook's ``retry_after_cap``)."""
    seconds = _hold_for(answer, cap) if rate is not None else None
    if rate is not None and seconds:
        rate.hold(seconds)
    return answer


async def apace_after(answer: Answer, rate: BookingLimiter | None, cap: float) -> Answer:
    """:func:`pace_after` for the event loop."""
    seconds = _hold_for(answer, cap) if rate is not None else None
    if rate is not None and seconds:
        await rate.ahold(seconds)
    return answer
