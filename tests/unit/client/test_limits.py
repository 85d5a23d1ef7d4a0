"""The limits' parts without a server: the window rule, the host's window file, the 429 time budget."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from airflow_provider_butlr.client.limits.budget import TASK_MARGIN, RateLimitWaits
from airflow_provider_butlr.client.limits.host import HostLimiter, decode, encode
from airflow_provider_butlr.client.limits.window import MAX_HOLD, Window, hold_seconds
from airflow_provider_butlr.client.ratelimit import RateLimiter
from airflow_provider_butlr.client.tokens.host_store import HostStore

pytestmark = pytest.mark.airflow_independent


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def in_any_minute(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 60.0) for start in times)


# --- the window rule ----------------------------------------------------------------------------


def test_the_window_books_first_come_first_served_and_never_more_than_the_limit_a_minute() -> None:
    window, times = Window(), []
    for i in range(23):
        times.append(window.book(i, 1000.0 + i * 0.5, 5))  # callers faster than the limit
    assert times == sorted(times)  # nobody overtakes anyone: no caller starves
    assert in_any_minute(times) == 5
    assert times[:6] == [1000.0, 1000.5, 1001.0, 1001.5, 1002.0, 1060.0]


def test_a_slot_counts_from_its_answer_and_a_hold_delays_everyone() -> None:
    window = Window()
    window.book(1, 1000.0, 1)
    window.answered(1, 1007.0)  # a slow answer: the server may have counted it at 1007
    assert window.book(2, 1008.0, 1) == 1067.0
    window.hold(1200.0)
    assert window.book(3, 1100.0, 100) == 1200.0
    window.answered(999, 5000.0)  # an unknown (expired) slot changes nothing
    assert [at for _, at in window.slots] == [1067.0, 1200.0]


@pytest.mark.parametrize(("asked", "held"), [(12.5, 12.5), (-3.0, 0.0), (1e12, MAX_HOLD)])
def test_holds_are_bounded(asked: float, held: float) -> None:
    assert hold_seconds(asked) == held
    assert hold_seconds(float("nan")) is None and hold_seconds(float("inf")) is None


# --- the host's window file ---------------------------------------------------------------------


def host_limiter(tmp_path: Path, per_minute: int, clock: Clock) -> HostLimiter:
    store = HostStore(tmp_path / "tokens")
    process = RateLimiter(per_minute, clock=clock)
    return HostLimiter(lambda: store.open_record("key.rate"), per_minute, process, clock=clock)


def test_the_window_file_round_trips_and_garbage_reads_as_empty() -> None:
    window = Window([(1, 1000.0), (2**63 - 1, 1060.5)], 1100.0)
    assert decode(encode(window)) == window
    for garbage in (b"", b"BRL1", b"XXXX" + encode(window)[4:], encode(window)[:-3], os.urandom(64)):
        assert decode(garbage) == Window() or garbage[:4] == b"BRL1"


def test_limiters_on_one_host_share_the_file_and_threads_queue_in_it(tmp_path: Path) -> None:
    clock = Clock()
    first, second = host_limiter(tmp_path, 4, clock), host_limiter(tmp_path, 4, clock)  # two processes
    barrier, delays = threading.Barrier(8), []

    def book(limiter: HostLimiter) -> None:
        barrier.wait()
        delays.append(limiter.reserve())

    threads = [threading.Thread(target=book, args=(lim,)) for lim in [first, second] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(delays) == [0.0] * 4 + [60.0] * 4
    assert oct(os.stat(tmp_path / "tokens" / "key.rate").st_mode & 0o777) == "0o600"
    assert oct(os.stat(tmp_path / "tokens").st_mode & 0o777) == "0o700"


def test_a_hold_in_the_file_holds_every_process_of_the_host(tmp_path: Path) -> None:
    clock = Clock()
    host_limiter(tmp_path, 100, clock).hold(12.5)
    assert host_limiter(tmp_path, 100, clock).reserve() == 12.5


def test_an_unusable_directory_falls_back_to_the_process_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "tokens").symlink_to(tmp_path / "elsewhere")  # a planted symlink: never used
    clock = Clock()
    limiter = host_limiter(tmp_path, 2, clock)
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 60.0]  # the process's own window
    assert not (tmp_path / "elsewhere" / "key.rate").exists()
    assert "the process limit stands in" in caplog.text


# --- the time budget of answers 429 -------------------------------------------------------------


def test_the_budget_counts_the_waits_and_stops_before_one_would_overrun_it() -> None:
    waits = RateLimitWaits(100.0)
    assert [waits.spent(30.0, 30.0) for _ in range(4)] == [False, False, False, True]
    assert waits.waited() == 90.0 and waits.answers == 4  # 10 s are left, the next wait is 30 s
    text = waits.describe()
    assert "it waited 90 s over 4 answer(s) 429" in text and "extra.max_rate_limit_wait" in text
    assert "Retry-After: 30 s" in text


def test_the_task_execution_timeout_bounds_the_budget() -> None:
    clock = Clock()
    waits = RateLimitWaits(600.0, not_after=clock.now + 60.0, clock=clock)
    assert not waits.spent(30.0, 30.0)
    clock.now += 30.0  # the wait happened
    assert waits.remaining() == pytest.approx(30.0 - TASK_MARGIN)
    assert waits.spent(30.0, 30.0)  # it would end after the task is killed: stop now
    assert "execution_timeout" in waits.describe()


def test_a_zero_budget_fails_at_the_first_429_that_asks_for_a_wait() -> None:
    waits = RateLimitWaits(0.0)
    assert waits.spent(None, 0.5) and waits.describe().startswith("it waited 0 s over 1 answer(s) 429")
