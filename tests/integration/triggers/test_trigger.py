"""ButlrTrigger on a real event loop against the emulator: events, deadline, no hot loop, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import itertools
import json
import logging
import math
import statistics
import time
import warnings
from typing import Any

import pytest

from airflow_provider_butlr.triggers.butlr import ButlrTrigger
from tests.conftest import TEST_CLIENT_SECRET

GRAPHQL = "/api/v3/graphql"
LOGIN = "/api/v2/clients/login"
SITES_PLAN: dict[str, Any] = {
    "requests": [{"endpoint": GRAPHQL, "json": {"query": "{ sites { data { id } } }"}}],
    "conditions": [{"type": "value_at", "path": "data.sites.data.0.id", "op": "!=", "value": None}],
}
NEVER_PLAN: dict[str, Any] = {
    "requests": SITES_PLAN["requests"],
    "conditions": [{"type": "value_at", "path": "data.sites.data.0.id", "op": "==", "value": "no-such-site"}],
}


def make_trigger(plan: dict[str, Any] = SITES_PLAN, *, duration: float = 5.0, **kwargs: Any) -> ButlrTrigger:
    """A trigger with short waits; hook options (e.g. ``max_retries``) go into ``hook_params``."""
    kwargs.setdefault("poll_interval", 0.1)
    hook_params = {"retry_wait_initial": 0.01, "retry_wait_max": 0.02, **kwargs.pop("hook_params", {})}
    for name in ("max_retries", "timeout", "retry_after_cap"):
        if name in kwargs:
            hook_params[name] = kwargs.pop(name)
    return ButlrTrigger(plan=plan, deadline=time.time() + duration, hook_params=hook_params, **kwargs)


def shared_hook(trigger: ButlrTrigger) -> Any:
    """The hook of the shared polls a running trigger belongs to."""
    from airflow_provider_butlr.hooks.shared_polls import shared_polls

    polls = shared_polls(trigger.butlr_conn_id, trigger.hook_params)
    assert polls is not None and polls.members >= 1
    return polls.hook


async def run_to_end(trigger: ButlrTrigger) -> dict[str, Any]:
    """Collect every event; a trigger must yield exactly one."""
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1, events
    return events[0]


def test_serialize_round_trip_is_json_and_survives_the_trigger_table() -> None:
    # The Trigger row serializes and encrypts the kwargs the way the installed Airflow does
    # (airflow.sdk.serde from 3.2, BaseSerialization before).
    from airflow.models.trigger import Trigger

    trigger = make_trigger(
        max_retries=2, exponential_backoff=True, max_poll_interval=30.0, unsuccessful_polls=3
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_butlr.triggers.butlr.ButlrTrigger"
    module, name = classpath.rsplit(".", 1)
    rebuilt_cls = getattr(importlib.import_module(module), name)
    from_json = rebuilt_cls(**json.loads(json.dumps(kwargs)))
    assert from_json.serialize() == (classpath, kwargs)
    row = Trigger.from_object(trigger)
    assert row.classpath == classpath
    from_row = rebuilt_cls(**row.kwargs)
    assert from_row.serialize() == (classpath, kwargs)


def test_kwargs_carry_no_secret_or_token(butlr_conn: Any) -> None:
    _, kwargs = make_trigger().serialize()
    text = json.dumps(kwargs)
    assert TEST_CLIENT_SECRET not in text
    assert "Bearer" not in text and "access_token" not in text


def test_a_bad_plan_fails_at_construction_naming_the_field() -> None:
    from airflow_provider_butlr.exceptions import ButlrConfigurationError

    bad = {
        "requests": SITES_PLAN["requests"],
        "conditions": [{"type": "value_at", "path": "x", "op": "gt", "value": 1}],
    }
    with pytest.raises(ButlrConfigurationError, match=r"conditions\[0\]\.op"):
        make_trigger(bad)


async def test_success_event_with_summary(butlr_conn: Any) -> None:
    event = await run_to_end(make_trigger())
    assert event["status"] == "success"
    assert event["polls"] == 1
    assert event["summary"]["matched"] == 1
    assert "responses" not in event  # only a worker-side response_check needs them


async def test_success_can_return_the_responses_for_a_worker_check(butlr_conn: Any) -> None:
    event = await run_to_end(make_trigger(return_responses=True))
    assert event["responses"][0]["data"]["sites"]["data"]
    too_small = await run_to_end(make_trigger(return_responses=True, max_response_bytes=10))
    assert too_small["status"] == "error"
    assert "max_response_bytes" in too_small["message"]


async def test_timeout_event_at_the_deadline_with_the_last_result(butlr_conn: Any) -> None:
    # the deadline also ends a poll in flight: room for the first poll even on a loaded machine
    event = await run_to_end(make_trigger(NEVER_PLAN, duration=3.0, poll_interval=0.5))
    assert event["status"] == "timeout"
    assert "does not satisfy" in event["message"]
    assert 1 <= event["polls"] <= math.ceil(3.0 / 0.5)


async def test_past_deadline_times_out_without_a_request(butlr_conn: Any) -> None:
    event = await run_to_end(make_trigger(duration=-1))
    assert event["status"] == "timeout" and event["polls"] == 0
    assert butlr_conn.counters.requests(GRAPHQL) == 0


@pytest.mark.parametrize("max_retries", [0, 2])
async def test_no_hot_loop_when_every_request_answers_500(butlr_conn: Any, max_retries: int) -> None:
    duration, interval = 1.0, 0.2
    butlr_conn.faults.add(path="", kind="status", status=500)
    trigger = make_trigger(
        duration=duration, poll_interval=interval, max_retries=max_retries, max_consecutive_failures=100
    )
    event = await run_to_end(trigger)
    assert event["status"] == "timeout"
    assert "HTTP 500" in event["message"]
    polls = math.ceil(duration / interval)
    assert 2 <= event["polls"] <= polls  # it kept trying, one poll per interval
    # every poll is one login attempt plus its retries: no request escapes the interval
    assert butlr_conn.counters.total <= polls * (1 + max_retries)


async def test_no_hot_loop_when_every_request_answers_401(butlr_conn: Any) -> None:
    duration, interval = 1.0, 0.2
    butlr_conn.faults.add(path="", kind="unauthorized")
    event = await run_to_end(
        make_trigger(duration=duration, poll_interval=interval, max_consecutive_failures=100)
    )
    assert event["status"] == "timeout"
    assert "Butlr login refused" in event["message"]
    assert butlr_conn.counters.total <= math.ceil(duration / interval)  # 401 is never retried in a poll


async def test_data_401_is_replayed_once_per_poll_then_waits(butlr_conn: Any) -> None:
    duration, interval = 6.0, 1.0  # room for 2+ polls (2 logins each) on a loaded machine
    butlr_conn.faults.add(path=GRAPHQL, kind="unauthorized")
    event = await run_to_end(
        make_trigger(duration=duration, poll_interval=interval, max_consecutive_failures=100)
    )
    assert event["status"] == "timeout"
    assert "even after a fresh login" in event["message"]
    polls = event["polls"]
    assert (
        1 <= polls <= math.ceil(duration / interval)
    )  # it waits between polls (a loaded machine may fit one)
    # request + one replay per poll (the last poll may have been cut by the deadline while in flight)
    assert 2 * (polls - 1) <= butlr_conn.counters.requests(GRAPHQL) <= 2 * polls
    # a login before the request and a fresh one before the replay (the refused token is dropped);
    # a poll cut by the deadline may have logged in without sending the request that follows
    logins, requests = butlr_conn.counters.requests(LOGIN), butlr_conn.counters.requests(GRAPHQL)
    assert requests <= logins <= requests + 1


async def test_failure_budget_ends_with_one_error_event_and_sleeps_between_failures(butlr_conn: Any) -> None:
    interval = 0.15
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=503)
    event = await run_to_end(
        make_trigger(duration=30, poll_interval=interval, max_retries=0, max_consecutive_failures=3)
    )
    assert event["status"] == "error"
    assert "3 time(s) in a row" in event["message"] and "HTTP 503" in event["message"]
    assert event["polls"] == 3
    stamps = [r.timestamp for r in butlr_conn.counters.log if r.path == GRAPHQL]
    assert len(stamps) == 3
    # polls start on ticks one interval apart; the first request also waited for the login
    assert stamps[2] - stamps[1] >= interval * 0.9
    assert all(later - earlier >= interval * 0.6 for earlier, later in itertools.pairwise(stamps))


async def test_a_success_resets_the_failure_budget(butlr_conn: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=503, at_calls=[1, 3])
    event = await run_to_end(
        make_trigger(NEVER_PLAN, duration=1.0, max_retries=0, max_consecutive_failures=2)
    )
    assert event["status"] == "timeout"  # fail, ok, fail, ok ...: never two failures in a row


async def test_a_client_error_ends_the_wait_at_once(butlr_conn: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=400)
    event = await run_to_end(make_trigger(duration=30, max_consecutive_failures=100))
    assert event["status"] == "error"
    assert "cannot recover" in event["message"] and "HTTP 400" in event["message"]
    assert event["polls"] == 1


async def test_graphql_errors_count_as_failed_polls(butlr_conn: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="graphql_partial")
    event = await run_to_end(make_trigger(duration=30, max_consecutive_failures=2))
    assert event["status"] == "error"
    assert "injected partial failure" in event["message"]


async def test_missing_connection_is_one_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_BUTLR_MISSING", raising=False)
    event = await run_to_end(make_trigger(butlr_conn_id="butlr_missing"))
    assert event["status"] == "error"
    assert "butlr_missing" in event["message"]


async def test_exponential_backoff_spaces_polls_further_apart(butlr_conn: Any) -> None:
    """Gaps between the polls' requests as the server saw them (polls start on ticks of the grid)."""

    def gaps() -> list[float]:
        stamps = [r.timestamp for r in butlr_conn.counters.log if r.path == GRAPHQL]
        butlr_conn.counters.reset()
        return [later - earlier for earlier, later in itertools.pairwise(stamps)]

    await run_to_end(make_trigger(SITES_PLAN))  # the login first: its time is not a gap between polls
    gaps()
    await run_to_end(make_trigger(NEVER_PLAN, duration=1.5, poll_interval=0.1))
    steady = gaps()
    await run_to_end(make_trigger(NEVER_PLAN, duration=2.0, poll_interval=0.1, exponential_backoff=True))
    backoff = gaps()
    assert len(steady) >= 4 and statistics.median(steady) == pytest.approx(0.1, abs=0.02)
    assert min(steady) >= 0.08  # never faster than the interval (the first gap may lose the login's ms)
    # the interval doubles after each miss: 0.1, 0.2, 0.4, 0.8 (a tick of the doubled grid: up to 1.5x)
    expected = [0.1, 0.2, 0.4, 0.8][: len(backoff)]
    assert len(backoff) >= 3
    assert all(0.8 * e <= gap <= 1.5 * e + 0.1 for gap, e in zip(backoff, expected, strict=True)), backoff


def test_backoff_intervals_are_capped() -> None:
    trigger = make_trigger(poll_interval=10, exponential_backoff=True, max_poll_interval=35)
    assert [trigger._interval(n) for n in range(6)] == [10, 10, 20, 35, 35, 35]
    assert make_trigger(poll_interval=10)._interval(5) == 10


async def test_cancellation_closes_the_client_and_cleanup_is_safe(butlr_conn: Any) -> None:
    trigger = make_trigger(NEVER_PLAN, poll_interval=30)
    task = asyncio.ensure_future(trigger.run().__anext__())
    for _ in range(100):
        await asyncio.sleep(0.02)
        if trigger._poller is not None:
            break
    hook = shared_hook(trigger)
    assert hook.is_open
    client = hook._client
    assert client is not None and not client.is_closed
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not hook.is_open and client.is_closed
    await trigger.cleanup()
    await trigger.on_kill()


async def test_on_kill_releases_the_client_of_a_running_trigger(butlr_conn: Any) -> None:
    trigger = make_trigger(NEVER_PLAN, poll_interval=30)
    task = asyncio.ensure_future(trigger.run().__anext__())
    for _ in range(100):
        await asyncio.sleep(0.02)
        if trigger._poller is not None:
            break
    hook = shared_hook(trigger)
    assert hook._client is not None
    client = hook._client
    await trigger.on_kill()
    assert not hook.is_open and client.is_closed
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_no_resource_warning_on_any_exit(butlr_conn: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await run_to_end(make_trigger())  # success
        await run_to_end(make_trigger(NEVER_PLAN, duration=0.3))  # timeout
        butlr_conn.faults.add(path=GRAPHQL, kind="status", status=400)
        await run_to_end(make_trigger())  # error
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, [str(w.message) for w in leaks]


async def test_events_and_logs_hold_no_secret(butlr_conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events = [await run_to_end(make_trigger(return_responses=True))]
    butlr_conn.faults.add(path=GRAPHQL, kind="unauthorized")
    events.append(await run_to_end(make_trigger(duration=0.5, max_consecutive_failures=100)))
    text = json.dumps(events) + caplog.text
    assert TEST_CLIENT_SECRET not in text
    for token in butlr_conn.issued_tokens:
        assert token not in text
