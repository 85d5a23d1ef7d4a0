"""Issue 22, item 5: a far-future or absurd ``Retry-After`` can neither hang nor crash any caller.

With the client-side rate limit on (``max_requests_per_minute``), a 429's ``Retry-After`` also holds
every other call of those credentials in the process; that hold is capped exactly like the retry's
own wait (``retry_after_cap``). Without the limit, the header only sets the (capped) wait. Any header
text parses to seconds or to nothing, never to an exception.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_butlr.client import ratelimit
from airflow_provider_butlr.exceptions import ButlrRateLimitError
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
from tests.support.hostile import (
    DATA,
    DRIVERS,
    Driver,
    HostileApi,
    Request,
    async_call,
    hostile_api,
    outcome,
    sync_call,
    use_connection,
)

CAP = 0.5  # the hooks' retry_after_cap here: the longest any wait or hold may last
BOUND = 8.0  # seconds a call may take here, with a loaded machine's margin
HEADERS = [
    "86400",
    "1000000000000",
    "9" * 400,
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Sun, 06 Nov 1994 08:49:37 -99999999999999999999",
    "1e12",
    "nan",
    "-5",
]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    ratelimit.clear()
    yield from hostile_api(monkeypatch)
    ratelimit.clear()


def throttling_once(header: str) -> Any:
    calls = {"n": 0}

    def script(request: Request) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            request.reply(429, '{"message": "slow down"}', headers={"Retry-After": header})
        else:
            request.reply(200, {"data": []})

    return script


def bounded(call: Driver, *args: Any, **kwargs: Any) -> tuple[Any, Any, float]:
    """``outcome`` of the call, or a failure once it has run for BOUND seconds (it would hang)."""
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(outcome(call, *args, **kwargs)), daemon=True)
    worker.start()
    worker.join(BOUND)
    if not box:
        pytest.fail(f"the call was still waiting after {BOUND} s")
    return box[0]


@DRIVERS
@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("limited", [True, False], ids=["rate-limited", "unlimited"])
def test_a_retry_after_is_capped_and_never_crashes(
    api: HostileApi, call: Driver, header: str, limited: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if limited:
        use_connection(monkeypatch, api, max_requests_per_minute=60)
    api.script = throttling_once(header)
    result, err, seconds = bounded(call, "POST", DATA, {"q": 1}, retry_after_cap=CAP)
    assert err is None and result == {"data": []}, err  # waited at most the cap, then retried
    assert seconds < BOUND


@DRIVERS
@pytest.mark.parametrize("header", ["86400", "1000000000000", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_the_limiter_hold_of_a_far_future_retry_after_is_capped_for_every_caller(
    api: HostileApi, call: Driver, header: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hold is process-wide: a 429 seen by one hook paces the next call of another (sync or
    async) of the same credentials, for at most ``retry_after_cap`` seconds, not for a day."""
    use_connection(monkeypatch, api, max_requests_per_minute=60, max_rate_limit_wait=0)
    api.script = throttling_once(header)
    _, err, _ = bounded(call, "POST", DATA, {"q": 1}, retry_after_cap=CAP)
    assert isinstance(err, ButlrRateLimitError), err
    for other in (sync_call, async_call):
        result, err, seconds = bounded(other, "POST", DATA, {"q": 2}, retry_after_cap=CAP)
        assert err is None and result == {"data": []} and seconds < BOUND, (err, seconds)


def test_an_async_caller_held_by_the_limiter_stays_cancellable(
    api: HostileApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a long hold (the cap at its largest, an hour) is an asyncio sleep: cancelling ends it."""
    use_connection(monkeypatch, api, max_requests_per_minute=60, max_retries=0)
    api.script = throttling_once("86400")
    outcome(sync_call, "POST", DATA, {"q": 1}, retry_after_cap=3600)

    async def held() -> float:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5), ButlrAsyncHook(retry_after_cap=3600) as hook:
                await hook.arequest_json("POST", DATA, json={"q": 2})
        return time.monotonic() - started

    assert asyncio.run(held()) < BOUND


pytestmark = pytest.mark.airflow_independent
