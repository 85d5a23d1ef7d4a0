"""The client-side rate limit: a rolling-minute token bucket, with a patched clock (no real waits)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from airflow_provider_butlr.client import ratelimit
from airflow_provider_butlr.client.limits import base as limits_base
from airflow_provider_butlr.client.ratelimit import RateLimiter, limiter_for


class FakeClock:
    """Time that moves only when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    ratelimit.clear()
    yield
    ratelimit.clear()


def starts(limiter: RateLimiter, clock: FakeClock, count: int) -> list[float]:
    """When each of ``count`` requests may start (the clock does not move between them)."""
    return [clock.now + limiter.reserve() for _ in range(count)]


def test_a_burst_up_to_the_limit_goes_at_once_then_one_per_freed_slot() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, clock=clock, sleep=clock.sleep)
    assert starts(limiter, clock, 5) == [1000.0, 1000.0, 1000.0, 1060.0, 1060.0]


def test_no_rolling_minute_ever_holds_more_than_the_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock, sleep=clock.sleep)
    times = []
    for step in range(40):
        clock.now = 1000.0 + step * 3.7  # callers arriving faster than the limit allows
        times.append(clock.now + limiter.reserve())
    assert times == sorted(times)
    for i, first in enumerate(times):
        assert sum(1 for t in times[i:] if t < first + 60.0) <= 5


def test_acquire_sleeps_for_the_reserved_delay() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 60.0]
    assert clock.sleeps == [60.0]
    clock.now += 30.0
    assert limiter.acquire() == 30.0  # the second slot frees at 1060


def test_aacquire_awaits_instead_of_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)
    awaited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        awaited.append(seconds)

    monkeypatch.setattr(limits_base.asyncio, "sleep", fake_sleep)

    async def two() -> list[float]:
        return [await limiter.aacquire(), await limiter.aacquire()]

    assert asyncio.run(two()) == [0.0, 60.0]
    assert awaited == [60.0] and clock.sleeps == []


def test_a_slot_comes_back_a_minute_after_the_answer_not_the_send() -> None:
    """The server counted the request somewhere between send and answer: the answer is the safe end."""
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    with limiter.sending() as waited:
        clock.now += 4.0  # a slow answer (latency, queueing at the server)
    assert waited == 0.0
    with limiter.sending():
        pass  # answered at once, at 1004
    assert starts(limiter, clock, 2) == [1064.0, 1064.0]  # not 1060 and 1064


def test_asending_gives_the_slot_back_after_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)
    awaited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        awaited.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(limits_base.asyncio, "sleep", fake_sleep)

    async def two() -> None:
        for _ in range(2):
            async with limiter.asending():
                clock.now += 2.5

    asyncio.run(two())
    assert awaited == [60.0] and clock.now == 1000.0 + 2.5 + 60.0 + 2.5


def test_a_server_retry_after_holds_every_caller() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    limiter.hold(12.5)
    assert starts(limiter, clock, 2) == [1012.5, 1012.5]


def test_threads_share_one_allowance() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        limiter.acquire()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(clock.sleeps) == [60.0] * 4  # 4 went at once, 4 waited for the next minute


def test_limiter_for_is_shared_per_key_and_off_without_a_limit() -> None:
    assert limiter_for("https://api.example|client", None) is None
    assert limiter_for("https://api.example|client", 0) is None
    first = limiter_for("https://api.example|client", 50)
    assert first is not None and limiter_for("https://api.example|client", 50) is first
    assert limiter_for("https://api.example|other", 50) is not first
    assert limiter_for("https://api.example|client", 20) is first and first.per_minute == 20


@pytest.mark.parametrize("bad", [-1, 1.5, True, "50"])
def test_a_bad_limit_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="max_requests_per_minute must be a positive integer"):
        RateLimiter(bad)  # type: ignore[arg-type]


def test_the_connection_extra_limits_sync_and_async_hooks_together(emulator, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``max_requests_per_minute`` on the connection: one limiter for every hook of those credentials."""
    from airflow_provider_butlr.client.ratelimit import limiter
    from airflow_provider_butlr.hooks.butlr import ButlrHook
    from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
    from tests.conftest import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator, max_requests_per_minute=5))
    query = "{ sites { data { id } } }"
    with ButlrHook() as hook:
        hook.graphql(query)  # a login and a query: two slots
        hook.graphql(query)  # three

    async def one_async_query() -> None:
        async with ButlrAsyncHook() as async_hook:
            await async_hook.agraphql(query)  # the cached token: four

    asyncio.run(one_async_query())
    shared = limiter(ButlrHook().settings)
    assert shared is not None and shared.per_minute == 5
    assert shared.reserve() == 0  # the fifth slot of the minute is still free
    assert shared.reserve() > 55  # the sixth waits for the first slot to come back
    assert emulator.counters.total == 4


# The exchange and its drivers against loopback servers (like the fault matrix): run once, not per
# Airflow minor (the version matrix leaves airflow_independent tests to the main test step).
pytestmark = pytest.mark.airflow_independent
