"""Issue 27: one rate limit and one login for every process and every host.

Real processes (started from a fork server that imported this module, before any emulator thread),
one bucket: a file in the host's token directory, or a real ``redis-server`` (two "hosts": two token
directories). The emulator counts what reaches it, with timestamps; tokens are revoked through it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_butlr.client import ratelimit
from airflow_provider_butlr.client.tokens.cache import TOKEN_CACHE
from airflow_provider_butlr.testing import ButlrEmulator
from tests.conftest import TEST_CLIENT_SECRET, connection_json
from tests.support.redis_server import RedisServer, running_redis

SITES = "query { sites { data { id } } }"
GRAPHQL = "/api/v3/graphql"


# --- what a process does --------------------------------------------------------------------------


def _book(count: int) -> list[float]:
    """Book ``count`` slots of the connection's limiter without sending: when each may start."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    hook = ButlrHook()
    rate = ratelimit.limiter(hook.settings, hook.shared_backend)
    assert rate is not None
    slots = []
    for _ in range(count):
        delay = rate.reserve()  # the first one also connects (Redis): read the clock after it
        slots.append(time.time() + delay)
    return slots


def _send(count: int, threads: int) -> int:
    """``count`` GraphQL requests from each of ``threads`` threads of one hook; how many succeeded."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    hook = ButlrHook()
    done: list[int] = []

    def worker() -> None:
        mine = hook.for_worker()
        for _ in range(count):
            mine.graphql(SITES)
            done.append(1)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return len(done)


def _token_twice(use_async: bool, revoked: Any) -> tuple[str, str]:
    """A request, then (after the revocation) another: the digests of the tokens used."""

    def once() -> str:
        if not use_async:
            from airflow_provider_butlr.hooks.butlr import ButlrHook

            hook = ButlrHook()
            hook.graphql(SITES)
            return hashlib.sha256(hook.get_token().encode()).hexdigest()[:12]

        import asyncio

        from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook

        async def run() -> str:
            async with ButlrAsyncHook() as hook:
                await hook.agraphql(SITES)
                return hashlib.sha256((await hook.aget_token()).encode()).hexdigest()[:12]

        return asyncio.run(run())

    first = once()
    revoked.wait(120)
    return first, once()


JOBS: dict[str, Callable[..., Any]] = {"book": _book, "send": _send, "token_twice": _token_twice}


def _child(inbox: Any, go: Any, revoked: Any, results: Any) -> None:
    try:
        environment, job, args = inbox.get(timeout=120)
        os.environ.update(environment)
        go.wait(120)
        extra = (revoked,) if job == "token_twice" else ()
        results.put(("ok", JOBS[job](*args, *extra)))
    except BaseException as err:  # the parent reports it
        results.put(("error", f"{type(err).__name__}: {err}"))


class Fleet:
    """Processes that take their environment and job from ``inbox`` and start together on ``go``."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        self.inbox, self.results = ctx.Queue(), ctx.Queue()
        self.go, self.revoked = ctx.Event(), ctx.Event()
        self.processes = [
            ctx.Process(target=_child, args=(self.inbox, self.go, self.revoked, self.results))
            for _ in range(count)
        ]
        for process in self.processes:
            process.start()

    def run(self, jobs: list[tuple[dict[str, str], str, tuple[Any, ...]]]) -> list[Any]:
        for job in jobs:
            self.inbox.put(job)
        self.go.set()
        return self.collect()

    def collect(self) -> list[Any]:
        outcomes = [self.results.get(timeout=240) for _ in self.processes]
        assert [o for o in outcomes if o[0] != "ok"] == []
        return [o[1] for o in outcomes]

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
            process.join(5)


@pytest.fixture
def fleet() -> Iterator[Callable[[int], Fleet]]:
    made: list[Fleet] = []

    def make(count: int) -> Fleet:
        made.append(Fleet(count))
        return made[-1]

    TOKEN_CACHE.clear()
    ratelimit.clear()
    yield make
    for one in made:
        one.stop()
    ratelimit.clear()


@pytest.fixture
def redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        monkeypatch.setenv("AIRFLOW_CONN_BUTLR_REDIS", server.connection_json())
        yield server


def hosts(tmp_path: Path, count: int) -> list[str]:
    """Token directories, one per "host"."""
    return [str(tmp_path / f"host-{i}" / "butlr-tokens") for i in range(count)]


def environment(emu: Any, token_dir: str, redis: RedisServer | None, **extra: Any) -> dict[str, str]:
    if redis is not None:
        extra.setdefault("redis_conn_id", "butlr_redis")
    env = {
        "AIRFLOW_CONN_BUTLR_DEFAULT": connection_json(emu, **extra),
        "BUTLR_TOKEN_CACHE_DIR": token_dir,
        "AIRFLOW__CORE__FERNET_KEY": os.environ["AIRFLOW__CORE__FERNET_KEY"],
    }
    if redis is not None:
        env["AIRFLOW_CONN_BUTLR_REDIS"] = redis.connection_json()
    return env


def most_in_a_minute(times: list[float], slack: float = 0.0) -> int:
    """The most of ``times`` in any half-open 60-second window (less ``slack``: booked slot times are
    read back through each process's own clock, a millisecond or so after the booking)."""
    ordered = sorted(times)
    return max(sum(1 for t in ordered if start <= t < start + 60.0 - slack) for start in ordered)


BACKENDS = ["host", "redis"]


def backend_of(request: pytest.FixtureRequest, name: str) -> RedisServer | None:
    return request.getfixturevalue("redis") if name == "redis" else None


# --- one bucket ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_processes_book_in_one_bucket(
    backend: str, fleet: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Four processes (on two hosts with Redis, one host without) book 15 slots each against a limit
    of 10 a minute: every minute holds 10 of the 60 slots, where four process limits give 40 at once."""
    redis = backend_of(request, backend)
    dirs = hosts(tmp_path, 2 if redis else 1)
    with ButlrEmulator(port=0, client_secret=TEST_CLIENT_SECRET) as emu:
        jobs = [
            (environment(emu, dirs[i % len(dirs)], redis, max_requests_per_minute=10), "book", (15,))
            for i in range(4)
        ]
        slots = [t for booked in fleet(4).run(jobs) for t in booked]
    assert len(slots) == 60
    assert most_in_a_minute(slots, slack=0.1) == 10
    assert max(slots) - min(slots) >= 5 * 60 - 1  # six minutes of slots, the last one 5 minutes out


@pytest.mark.airflow_independent  # a minute of real time: run once, not per Airflow minor
def test_the_server_never_sees_more_than_the_limit_in_a_minute(
    fleet: Any, tmp_path: Path, redis: RedisServer
) -> None:
    """Against a server that allows 12 requests a minute, three processes (one with three threads)
    send 18: none is refused and no minute sees more than 12 arrive. Both scopes at once, each
    against its own server: one host (the window file), and two hosts (Redis). With a limit per
    process, all 18 would arrive in the first second and 6 would be refused. About 61 s."""
    extra = {"max_requests_per_minute": 12, "max_retries": 0}
    with (
        ButlrEmulator(port=0, client_secret=TEST_CLIENT_SECRET, rate_limit_per_minute=12) as one_host,
        ButlrEmulator(port=0, client_secret=TEST_CLIENT_SECRET, rate_limit_per_minute=12) as two_hosts,
    ):
        dirs = hosts(tmp_path, 3)
        fleets = []
        for emu, backend, (first, second) in (
            (one_host, None, (dirs[0], dirs[0])),
            (two_hosts, redis, (dirs[1], dirs[2])),
        ):
            jobs = [
                (environment(emu, first, backend, **extra), "send", (6, 1)),
                (environment(emu, second, backend, **extra), "send", (2, 3)),
                (environment(emu, first, backend, **extra), "send", (6, 1)),
            ]
            fleets.append(fleet(3))
            for job in jobs:
                fleets[-1].inbox.put(job)
        for started in fleets:
            started.go.set()
        for started, emu in zip(fleets, (one_host, two_hosts), strict=True):
            assert started.collect() == [6, 6, 6]
            data = [r for r in emu.counters.log if r.path == GRAPHQL]
            assert [r.status for r in data] == [200] * 18  # not one 429 (max_retries 0: one would fail)
            assert most_in_a_minute([r.timestamp for r in data]) <= 12


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_retry_after_holds_every_process(
    backend: str, fleet: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A 429 with ``Retry-After: 3`` to one process pauses the others too: nothing reaches the server
    within the 3 s, though a second process starts sending in the middle of them."""
    redis = backend_of(request, backend)
    dirs = hosts(tmp_path, 2 if redis else 1)
    with ButlrEmulator(port=0, client_secret=TEST_CLIENT_SECRET) as emu:
        emu.faults.add(path=GRAPHQL, kind="status", status=429, retry_after=3, at_calls=[1])
        extra = {"max_requests_per_minute": 100}
        first = fleet(1)
        first.inbox.put((environment(emu, dirs[0], redis, **extra), "send", (2, 1)))
        first.go.set()
        deadline = time.monotonic() + 60
        while not any(r.status == 429 for r in emu.counters.log):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = fleet(1)
        second.inbox.put((environment(emu, dirs[-1], redis, **extra), "send", (2, 1)))
        second.go.set()
        assert first.collect() == [2] and second.collect() == [2]
        data = [r for r in emu.counters.log if r.path == GRAPHQL]
    refused = next(r.timestamp for r in data if r.status == 429)
    later = [r.timestamp - refused for r in data if r.status == 200]
    assert len(later) == 4 and min(later) >= 3.0 - 0.05  # no process sent during the hold


# --- one login ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("token_cache", "logins"), [("redis", 1), ("host", 2)])
def test_a_revoked_token_costs_one_login_across_hosts(
    token_cache: str, logins: int, fleet: Any, tmp_path: Path, redis: RedisServer
) -> None:
    """Six processes on two hosts, half async: one login for all, and after every token is revoked,
    one more. With the per-host store, each host logs in for itself (the contrast)."""
    dirs = hosts(tmp_path, 2)
    with ButlrEmulator(port=0, client_secret=TEST_CLIENT_SECRET) as emu:
        six = fleet(6)
        for i in range(6):
            env = environment(emu, dirs[i % 2], redis, token_cache=token_cache)
            six.inbox.put((env, "token_twice", (i >= 3,)))
        six.go.set()
        deadline = time.monotonic() + 120
        while emu.counters.requests(GRAPHQL) < 6:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert emu.counters.successful_logins == logins
        emu.revoke_all_tokens()
        six.revoked.set()
        outcomes = six.collect()
        assert emu.counters.successful_logins == 2 * logins
    assert len({first for first, _ in outcomes}) == logins
    assert len({second for _, second in outcomes}) == logins


def test_redis_holds_no_secret_and_no_token_in_clear(fleet: Any, tmp_path: Path, redis: RedisServer) -> None:
    with ButlrEmulator(port=0, client_secret=TEST_CLIENT_SECRET) as emu:
        env = environment(emu, hosts(tmp_path, 1)[0], redis, token_cache="redis", max_requests_per_minute=50)
        assert fleet(1).run([(env, "send", (2, 1))]) == [2]
        tokens, client_id, url = list(emu.issued_tokens), emu.client_id, emu.url
    client = redis.client(db=1)  # the connection's db
    keys = [k.decode() for k in client.keys("*")]
    assert keys and all(k.startswith("butlr:") for k in keys)
    dump = b"".join(client.dump(k) or b"" for k in keys) + " ".join(keys).encode()
    for needle in (TEST_CLIENT_SECRET, client_id, *tokens, url):
        assert needle.encode() not in dump
    assert any(k.endswith(":token") for k in keys) and any(k.endswith(":rate") for k in keys)


# --- a Redis outage ----------------------------------------------------------------------------------


def test_a_redis_restart_is_waited_out_and_a_long_outage_falls_back_to_the_host(
    tmp_path: Path, redis: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_butlr.client.limits import redis_limiter
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    ratelimit.clear()
    with ButlrEmulator(port=0, client_secret=TEST_CLIENT_SECRET) as emu:
        monkeypatch.setenv(
            "AIRFLOW_CONN_BUTLR_DEFAULT",
            connection_json(emu, max_requests_per_minute=3, redis_conn_id="butlr_redis"),
        )
        hook = ButlrHook()
        rate = ratelimit.limiter(hook.settings, hook.shared_backend)
        assert rate is not None and rate.scope == "redis"
        assert [rate.reserve() for _ in range(2)] == [0.0, 0.0]

        redis.stop()  # a restart: back within a second
        restart = threading.Timer(1.0, redis.start)
        restart.start()
        assert rate.reserve() == pytest.approx(0.0, abs=0.05)  # waited out, and Redis answered
        restart.join()
        assert "stands in" not in caplog.text

        monkeypatch.setattr(redis_limiter, "OUTAGE_RETRY_SECONDS", 0.5)
        redis.stop()  # a long outage: the host's own window stands in, said once
        assert [rate.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(60.0, abs=0.5)]
        assert caplog.text.count("the host limit stands in") == 1
    ratelimit.clear()
