"""Issue 27, item 2: a 429 is "wait", not "fail". Real HTTP to the emulator; time is patched, so
waits of minutes take none: every wait of the retry loop moves the clock instead of sleeping."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import tenacity
import time_machine

from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrRateLimitError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
from tests.conftest import connection_json
from tests.integration.client.test_token_store_variable import _serialize as serialize
from tests.support.airflow_versions import airflow_version_tuple

GRAPHQL = "/api/v3/graphql"
SITES = "query { sites { data { id } } }"


class Waits:
    """The retry loop's sleeps (sync and async), taken as clock moves."""

    def __init__(self, traveller: Any) -> None:
        self.traveller = traveller
        self.seconds: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.seconds.append(float(seconds))
        self.traveller.shift(seconds)

    async def asleep(self, seconds: float, *args: Any) -> None:
        self.sleep(seconds)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Waits]:
    with time_machine.travel(time.time(), tick=True) as traveller:
        recorder = Waits(traveller)
        monkeypatch.setattr(tenacity.nap, "time", type("T", (), {"sleep": staticmethod(recorder.sleep)}))
        real_sleep = asyncio.sleep

        async def async_sleep(seconds: float, *args: Any) -> Any:
            if seconds > 0.05:  # the retry loop's waits; the event loop's own short sleeps stay real
                recorder.sleep(seconds)
                return await real_sleep(0)
            return await real_sleep(seconds, *args)

        monkeypatch.setattr(asyncio, "sleep", async_sleep)
        yield recorder


@pytest.fixture
def conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The connection of the issue: max_retries 5 (the default), a 10-minute wait budget (the default)."""
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator, max_retries=5))
    return emulator


def test_a_long_run_of_429s_is_waited_out_though_it_outlasts_the_retries(conn: Any, waits: Waits) -> None:
    """The issue's failure: Retry-After 44 s, then 1-3 s answers, more than six times. It succeeds."""
    conn.faults.add(path=GRAPHQL, kind="status", status=429, retry_after="44", at_calls=[1])
    conn.faults.add(path=GRAPHQL, kind="status", status=429, retry_after="2", at_calls=range(2, 13))
    assert ButlrHook().graphql(SITES)["sites"]["data"]
    assert conn.counters.requests(GRAPHQL) == 13  # 12 answers 429: twice the 6 attempts allowed
    assert waits.seconds[0] == 44.0  # Retry-After honoured as it is
    assert all(w >= 2.0 for w in waits.seconds)  # never sooner than the server asked
    assert sum(waits.seconds) < 600.0


def test_the_wait_budget_ends_it_with_an_error_that_says_how_long_and_why(conn: Any, waits: Waits) -> None:
    conn.faults.add(path=GRAPHQL, kind="status", status=429, retry_after="30")
    with pytest.raises(ButlrRateLimitError) as info:
        ButlrHook().graphql(SITES)
    message = str(info.value)
    assert sum(waits.seconds) <= 600.0 and sum(waits.seconds) + 30.0 > 600.0  # the budget, used up
    answers = conn.counters.requests(GRAPHQL)
    assert answers > 6  # not the retries' count: the time budget
    assert re.search(rf"it waited (5[79]\d|600) s over {answers} answer\(s\) 429", message), message
    assert "the wait budget of 600 s (extra.max_rate_limit_wait)" in message
    assert "extra.max_requests_per_minute" in message  # what to check
    assert info.value.status == 429 and info.value.retry_after == 30.0


def test_the_budget_is_the_connection_extra_and_ends_before_the_task_execution_timeout(
    emulator: Any, waits: Waits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator, max_rate_limit_wait=120))
    emulator.faults.add(path=GRAPHQL, kind="status", status=429, retry_after="30")
    with pytest.raises(ButlrRateLimitError, match="the wait budget of 120 s"):
        ButlrHook().graphql(SITES)
    assert sum(waits.seconds) == 120.0

    waits.seconds.clear()
    hook = ButlrHook()
    hook.retry_policy = replace(hook.retry_policy, not_after=time.time() + 100)  # a task's deadline
    with pytest.raises(ButlrRateLimitError, match="would pass the task's execution_timeout"):
        hook.graphql(SITES)
    assert sum(waits.seconds) == 90.0  # the next 30 s would end within 5 s of the deadline


def test_other_faults_keep_their_retry_count(conn: Any, waits: Waits) -> None:
    conn.faults.add(path=GRAPHQL, kind="status", status=503)
    with pytest.raises(ButlrAPIError, match=r"failed after 6 attempt\(s\) \(5 retries allowed\)"):
        ButlrHook().graphql(SITES)
    assert conn.counters.requests(GRAPHQL) == 6


def test_429s_and_other_faults_count_apart(conn: Any, waits: Waits) -> None:
    """Five 503s (of six attempts) and ten 429s in one call: it still succeeds."""
    conn.faults.add(path=GRAPHQL, kind="status", status=503, at_calls=[1, 3, 5, 7, 9])
    conn.faults.add(
        path=GRAPHQL, kind="status", status=429, retry_after="5", at_calls=[2, 4, 6, *range(8, 20)]
    )
    assert ButlrHook().graphql(SITES)["sites"]["data"]
    statuses = [r.status for r in conn.counters.log if r.path == GRAPHQL]
    assert statuses.count(503) == 5 and statuses.count(429) >= 10 and statuses[-1] == 200


async def test_the_async_hook_waits_out_429s_too(conn: Any, waits: Waits) -> None:
    conn.faults.add(path=GRAPHQL, kind="status", status=429, retry_after="20", at_calls=range(1, 11))
    async with ButlrAsyncHook() as hook:
        assert (await hook.agraphql(SITES))["sites"]["data"]
    assert conn.counters.requests(GRAPHQL) == 11 and waits.seconds[0] == 20.0
    conn.faults.clear()
    conn.faults.add(path=GRAPHQL, kind="status", status=429, retry_after="50")
    async with ButlrAsyncHook(max_rate_limit_wait=200) as hook:
        with pytest.raises(ButlrRateLimitError, match="the wait budget of 200 s"):
            await hook.agraphql(SITES)


@pytest.mark.dag
@pytest.mark.skipif(
    airflow_version_tuple() < (3, 1, 0),
    reason="Airflow 3.0's dag.test() cannot run a DAG defined outside a DAG file (relative_fileloc)",
)
def test_the_task_deadline_is_read_from_the_running_task(airflow_db: str) -> None:
    """Inside a task, the hooks' waits end with its ``execution_timeout``; outside one, nothing ends them."""
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG, task

    from airflow_provider_butlr.hooks.base import task_deadline

    assert task_deadline() is None

    with DAG("butlr_task_deadline", schedule=None, start_date=pendulum.datetime(2025, 1, 1)) as dag:

        @task(execution_timeout=timedelta(minutes=7))
        def deadline() -> None:
            found = task_deadline()
            assert found is not None
            left = found - time.time()
            assert 6 * 60 < left <= 7 * 60, left  # started moments before: nearly 7 minutes left

        deadline()

    serialize(dag)
    assert dag.test().state == "success"
