"""Scenario 11: what the shared rate limit costs a request, per scope (issue 27).

Method: (1) the limiter alone: ``with limiter.sending(): pass`` (book a slot, then record the
answer), timed per call, for the process's window (memory), the host's (a file of the token
directory under ``flock``) and the deployment's (two Redis scripts over loopback, a ``redis-server``
started here; left out if there is none), at 1,000 requests a minute so no call waits, and the
host's window at 60 a minute (a small file) besides. (2) Whole small reporting calls through
``ButlrHook`` against the emulator: no limit set (no limiter at all) and each shared scope, median
latency in interleaved rounds. The limits never make a call wait here: the cost is the bookkeeping.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import butlr_client
from benchmarks.common import (
    BENCH_CONN_ID,
    Line,
    ScenarioResult,
    Settings,
    Target,
    interleaved,
    median,
    ratio,
)
from benchmarks.contenders import small_reporting_body
from benchmarks.emulator_process import EmulatorProcess

KEY = "limiter"
TITLE = "The shared rate limit's own cost per request"
START = datetime(2026, 11, 2, 0, tzinfo=UTC)
REDIS_CONN_ID = "butlr_bench_redis"


@contextmanager
def redis_server() -> Iterator[str | None]:
    """A throw-away redis-server on a free loopback port: its Airflow connection JSON (None: none)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    password = secrets.token_urlsafe(16)
    workdir = tempfile.mkdtemp(prefix="butlr-bench-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password, "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        yield json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": port, "password": password})
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def hook_with(extra: dict[str, Any]) -> Any:
    """A ButlrHook on the benchmark connection with these extras added."""
    name = f"AIRFLOW_CONN_{BENCH_CONN_ID.upper()}"
    conn = json.loads(os.environ[name])
    conn["extra"] = {**conn["extra"], **extra}
    os.environ[name] = json.dumps(conn)
    try:
        hook = butlr_client.new_hook()
        _ = (hook.settings, hook.shared_backend)  # resolved now, with these extras
    finally:
        conn["extra"] = {k: v for k, v in conn["extra"].items() if k not in extra}
        os.environ[name] = json.dumps(conn)
    return hook


def limiter_of(hook: Any) -> Any:
    from airflow_provider_butlr.client import ratelimit

    return ratelimit.limiter(hook.settings, hook.shared_backend)


def per_call(fn: Callable[[], Any], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def run(settings: Settings, emu: EmulatorProcess) -> ScenarioResult:
    from airflow_provider_butlr.client import ratelimit
    from airflow_provider_butlr.client.ratelimit import RateLimiter

    calls, rounds = settings.pick(900, 150), settings.pick(6, 2)
    token_dir = tempfile.mkdtemp(prefix="butlr-bench-limiter-")
    os.environ["BUTLR_TOKEN_CACHE_DIR"] = token_dir
    ratelimit.clear()
    rooms = emu.asset_ids("rooms", 20)
    bodies = [small_reporting_body(rooms[i % 20], START + timedelta(hours=i % 240)) for i in range(calls)]
    with redis_server() as redis_conn:
        if redis_conn is not None:
            os.environ[f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}"] = redis_conn
        scopes: dict[str, dict[str, Any]] = {
            "host window (file + flock)": {"max_requests_per_minute": 1000},
            # a window of its own (one limit per credentials and directory: sharing the file with
            # the 1,000 a minute scope, its 60 would hold every booking of that one too)
            "host window, 60 a minute": {
                "max_requests_per_minute": 60,
                "token_cache_dir": os.path.join(token_dir, "sixty"),
            },
        }
        if redis_conn is not None:
            scopes["deployment window (Redis scripts, loopback)"] = {
                "max_requests_per_minute": 1000,
                "redis_conn_id": REDIS_CONN_ID,
            }
        alone: dict[str, Callable[[], Any]] = {"process window (memory)": RateLimiter(1000).sending}
        hooks = {name: hook_with(extra) for name, extra in scopes.items()}
        for name, hook in hooks.items():
            alone[name] = limiter_of(hook).sending

        def sending(make: Callable[[], Any]) -> Callable[[], None]:
            def once() -> None:
                with make():
                    pass

            return once

        each = max(calls // rounds // 2, 10)  # booked per round: never a full minute of slots
        counts = {name: each for name in alone}
        # 60 a minute: every round together books fewer than 60 slots, or the calls would wait
        counts["host window, 60 a minute"] = max(60 // (rounds + 1), 1)
        limiter_samples = interleaved(
            rounds,
            {
                name: (lambda _r, m=make, n=counts[name]: per_call(sending(m), n))
                for name, make in alone.items()
            },
        )
        ratelimit.clear()

        calls_by: dict[str, Any] = {"no limit (no limiter at all)": hook_with({})}
        calls_by.update({f"ButlrHook, {name}": hook for name, hook in hooks.items() if "60" not in name})
        for hook in calls_by.values():  # warm-up: connections, token, scripts
            for body in bodies[:10]:
                butlr_client.reporting(hook, body)
        # with the limiter part's bookings and the warm-up, fewer than the 1,000 slots of a minute:
        # no call waits for a slot, so the figure is the bookkeeping alone
        per_round = max(calls // rounds // 2, 10)

        def timed(hook: Any) -> Callable[[int], list[float]]:
            def one_round(round_no: int) -> list[float]:
                batch = bodies[(round_no * per_round) % calls :][:per_round]
                return [_timed_call(hook, body) for body in batch]

            return one_round

        call_samples = interleaved(rounds, {name: timed(hook) for name, hook in calls_by.items()})
        for hook in calls_by.values():
            hook.close()
    ratelimit.clear()
    os.environ.pop("BUTLR_TOKEN_CACHE_DIR", None)
    shutil.rmtree(token_dir, ignore_errors=True)
    return _result(limiter_samples, call_samples, calls, rounds, redis_conn is not None)


def _timed_call(hook: Any, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    butlr_client.reporting(hook, body)
    return time.perf_counter() - started


def _result(
    limiter_samples: dict[str, list[list[float]]],
    call_samples: dict[str, list[list[float]]],
    calls: int,
    rounds: int,
    with_redis: bool,
) -> ScenarioResult:
    result = ScenarioResult(
        key=KEY, title=TITLE, method=(__doc__ or "").split("Method: ")[-1].replace("\n", " ")
    )
    if not with_redis:
        result.notes.append("redis-server is not installed here: the Redis scope was left out.")
    for name, rounds_of in limiter_samples.items():
        flat = [s for r in rounds_of for s in r]
        result.lines.append(
            Line(
                f"limiter alone: {name}",
                f"median {median(flat) * 1e6:.0f} us per request",
                {"median": median(flat)},
            )
        )
    medians = {name: median([s for r in rounds_of for s in r]) for name, rounds_of in call_samples.items()}
    base = medians["no limit (no limiter at all)"]
    for name, value in medians.items():
        result.lines.append(
            Line(
                name,
                f"median {value * 1000:.2f} ms per call ({ratio(value, base):.3f}x no limit)",
                {"median": value},
            )
        )
        if name != "no limit (no limiter at all)":
            result.ratios[f"{name} / no limit"] = ratio(value, base)
    # The target is the bookkeeping at a limit Butlr's own (about 50 a minute) calls for, per
    # request: under 1 ms, which is under 1 % of a Butlr call over the internet (100 ms and more).
    # The calls through ButlrHook on loopback (1-2 ms each, a 1,000 a minute window holding hundreds
    # of slots) are reported as figures: what a window of that many slots costs per call.
    sixty = median([s for r in limiter_samples["host window, 60 a minute"] for s in r])
    result.targets = [
        Target("the host window's own cost at 60 a minute, per request (ms)", sixty * 1000, 1.0, "<=")
    ]
    return result
