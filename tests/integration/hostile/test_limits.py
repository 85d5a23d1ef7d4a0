"""Issue 13, time and memory: a server that trickles one byte per second cannot hold a call past
``timeout`` x (retries + 1) (login, data call, the trigger's own deadline), and a body over
``max_response_bytes`` fails with a ButlrDataError naming the endpoint and the cap while peak memory
stays under twice the cap. Sync and async alike.

The wall-time checks are bound checks against a hostile server (the brief allows them here); the
margins are generous because the machine is shared.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrDataError
from airflow_provider_butlr.triggers.butlr import ButlrTrigger
from tests.support.hostile import (
    DATA,
    DRIVERS,
    QUICK,
    Driver,
    HostileApi,
    hostile_api,
    outcome,
    trigger_events,
    use_connection,
)

TIMEOUT = 1.5
RETRIES = 1
MARGIN = 4.0  # seconds: thread start-up, a loaded machine, the watchdog's grace after the deadline
BOUND = TIMEOUT * (RETRIES + 1) + MARGIN

MiB = 1024 * 1024
CAP = 8 * MiB
SERVED = 40 * MiB


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    yield from hostile_api(monkeypatch)


# --- time ----------------------------------------------------------------------------------------------


def trickling(headers_too: bool) -> Any:
    return lambda request: request.trickle(headers_too=headers_too)


@DRIVERS
@pytest.mark.parametrize(
    "where",
    ["login-body", "login-headers", "data-body", "data-headers"],
)
def test_a_trickling_server_cannot_hold_a_call_past_its_deadline(
    api: HostileApi, call: Driver, where: str
) -> None:
    script = trickling(headers_too=where.endswith("headers"))
    if where.startswith("login"):
        api.login_script = script
    else:
        api.script = script
    _, err, seconds = outcome(call, "POST", DATA, {"q": 1}, timeout=TIMEOUT, max_retries=RETRIES)
    assert seconds < BOUND, f"{where}: the call took {seconds:.1f} s, bound {BOUND:.1f} s"
    assert isinstance(err, ButlrAPIError), err
    assert "within" in str(err) or "timed out" in str(err), str(err)


def test_the_trigger_ends_at_its_deadline_while_a_request_trickles(api: HostileApi) -> None:
    api.script = trickling(headers_too=False)
    trigger = ButlrTrigger(
        plan={"requests": [{"endpoint": "/api/v3/occupancy"}]},
        deadline=time.time() + 4.0,
        poll_interval=0.1,
        hook_params={**QUICK, "timeout": 60.0, "max_retries": 0},
    )

    started = time.monotonic()
    events = trigger_events(trigger)
    seconds = time.monotonic() - started
    assert [event["status"] for event in events] == ["timeout"]
    assert seconds < 4.0 + MARGIN, f"the trigger took {seconds:.1f} s for a deadline 4 s away"


# --- memory ---------------------------------------------------------------------------------------------


def serving(status: int) -> Any:
    chunk = b" " * MiB  # built once: the server adds nothing to the traced peak
    return lambda request: request.stream(status, SERVED, chunk)


def traced_peak(call: Driver, *args: Any, **kwargs: Any) -> tuple[Any, Any, int]:
    """The call's outcome and the peak of memory it allocated (tracemalloc), in bytes."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result, err, _ = outcome(call, *args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, err, peak


@DRIVERS
def test_an_oversized_data_body_fails_naming_endpoint_and_cap_within_twice_the_cap(
    api: HostileApi, call: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, api, max_response_bytes=CAP, max_retries=0)
    api.script = serving(200)
    _, err, peak = traced_peak(call, "POST", DATA, {"q": 1})
    assert isinstance(err, ButlrDataError), err
    assert DATA in str(err) and f"max_response_bytes={CAP}" in str(err)
    assert peak < 2 * CAP, f"peak {peak / MiB:.1f} MiB for a cap of {CAP / MiB:.0f} MiB"


@DRIVERS
@pytest.mark.parametrize("status", [400, 500])
def test_an_oversized_error_body_is_read_only_in_part(
    api: HostileApi, call: Driver, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, api, max_response_bytes=CAP, max_retries=0)
    api.script = serving(status)
    _, err, peak = traced_peak(call, "POST", DATA, {"q": 1})
    assert isinstance(err, ButlrAPIError) and err.status == status, err
    assert peak < 2 * CAP, f"peak {peak / MiB:.1f} MiB for a cap of {CAP / MiB:.0f} MiB"


@DRIVERS
def test_a_body_under_the_cap_is_read_whole(
    api: HostileApi, call: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, api, max_response_bytes=CAP)
    payload = b'{"data": [' + b",".join(b"%d" % i for i in range(200000)) + b"]}"
    api.script = lambda request: request.reply(200, payload)
    result, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert err is None and len(result["data"]) == 200000


# The exchange and its drivers against loopback servers (like the fault matrix): run once, not per
# Airflow minor (the version matrix leaves airflow_independent tests to the main test step).
pytestmark = pytest.mark.airflow_independent
