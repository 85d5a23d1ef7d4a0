"""Issue 25, item 3: the final error of a failed task is one line a user can act on.

It names the connection, the field to check and the cause (a wrong secret, a host that refuses the
connection, a TLS failure, the rate limit); it carries no chained traceback that only repeats the
cause and no frames of the retry machinery, so it ends a task log near its top, not at line 233.
A wrong host fails in seconds: a login to a host that refuses connections retries twice unless
``max_retries`` is set. Airflow's Test button (a made-up connection id) gets the fields, not the id.
"""

from __future__ import annotations

import json
import socket
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrAuthError, ButlrError, ButlrRateLimitError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.operators.butlr import ButlrGraphQLOperator
from tests.conftest import connection_json
from tests.support.hostile import DATA, DRIVERS, SECRET, Driver, HostileApi, outcome, use_connection

INTERNAL = ("tenacity", "/client/flow", "/client/tokens/", "/client/classify", "concurrent/futures")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_one_line(err: BaseException | None, *must: str) -> None:
    """One line naming what it must; no chained cause or context shown; no internal frames."""
    assert isinstance(err, ButlrError), err
    text = str(err)
    assert "\n" not in text and all(part in text for part in must), text
    assert err.__cause__ is None and err.__suppress_context__, "no chained traceback"
    frames = [frame.filename for frame in traceback.extract_tb(err.__traceback__)]
    assert not [f for f in frames if any(part in f for part in INTERNAL)], frames  # none a user needs
    assert sum("/client/retry.py" in f for f in frames) <= 1, frames  # only the line that raises it
    shown = traceback.format_exception(err)
    assert shown[-1].strip().endswith(text.strip()) and len("".join(shown).splitlines()) < 40


def test_a_wrong_secret_fails_the_task_with_one_line_naming_connection_and_fields(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator, password="wrong-secret-123"))
    operator = ButlrGraphQLOperator(task_id="sites", query="{ sites { data { id } } }")
    _, err, _ = outcome(lambda: operator.execute({}))
    assert isinstance(err, ButlrAuthError)
    check_one_line(err, "HTTP 401", "client secret", "connection butlr_default", "fields password, login")
    assert emulator.counters.logins == 1  # not retried


@pytest.fixture
def nothing_listening(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """butlr_default on a loopback port nothing listens on, with the connection's default retries."""
    port = free_port()
    conn = {"conn_type": "butlr", "host": f"http://127.0.0.1:{port}", "login": "id", "password": SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", json.dumps(conn))
    yield port


@DRIVERS
def test_a_wrong_host_fails_in_seconds_naming_host_and_fields(nothing_listening: int, call: Driver) -> None:
    started = time.monotonic()
    _, err, _ = outcome(call, "POST", DATA, {"q": 1}, retry_wait_initial=0.5, retry_wait_max=30.0)
    seconds = time.monotonic() - started
    assert seconds < 8.0, f"{seconds:.1f} s to say nothing listens"  # was 6 attempts, ~17 s
    check_one_line(
        err,
        f"127.0.0.1:{nothing_listening} refused the connection",
        "after 3 attempt(s)",
        "connection butlr_default, fields host and port",
    )


@DRIVERS
def test_a_wrong_host_gets_the_retries_the_user_asks_for(
    nothing_listening: int, call: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "butlr", "host": f"http://127.0.0.1:{nothing_listening}", "login": "id"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT", json.dumps({**conn, "password": SECRET, "extra": {"max_retries": 4}})
    )
    _, err, _ = outcome(call, "POST", DATA, {"q": 1}, retry_wait_initial=0.01, retry_wait_max=0.01)
    assert isinstance(err, ButlrAPIError) and "after 5 attempt(s) (4 retries allowed)" in str(err), err


@DRIVERS
def test_a_tls_failure_names_the_fields_in_one_line(call: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    server = HostileApi()  # plain HTTP, asked for https://
    conn = {"conn_type": "butlr", "host": server.url.replace("http://", "https://"), "login": "id"}
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", json.dumps({**conn, "password": SECRET}))
    try:
        _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    finally:
        server.close()
    check_one_line(err, "TLS handshake failed", "connection butlr_default, fields host and port")


@DRIVERS
def test_a_rate_limit_names_the_extra_to_lower(call: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    server = HostileApi()
    use_connection(monkeypatch, server, max_retries=1, max_rate_limit_wait=0)
    server.script = lambda request: request.reply(
        429, '{"message": "slow down"}', headers={"Retry-After": "0"}
    )
    try:
        _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    finally:
        server.close()
    assert isinstance(err, ButlrRateLimitError)
    check_one_line(err, "HTTP 429", "connection butlr_default, extra.max_requests_per_minute")


# --- Airflow's Test button: a made-up connection id --------------------------------------------------

MADE_UP = "mjOC9zBe"  # what Airflow 3.3.2 named a connection under test


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"password": "wrong-secret-123"}, "(fields password, login and extra.audience)"),
        ({"password": ""}, "(field password, shown as 'Client Secret')"),
        ({"extra": {"timeout": 10**9}}, "(extra.timeout)"),
    ],
    ids=["wrong secret", "no secret", "absurd timeout"],
)
def test_the_connection_test_names_fields_not_the_made_up_id(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], shown: str
) -> None:
    conn = json.loads(connection_json(emulator))
    conn.update({k: v for k, v in fields.items() if k != "extra"})
    conn["extra"].update(fields.get("extra", {}))
    monkeypatch.setenv(f"AIRFLOW_CONN_{MADE_UP.upper()}", json.dumps(conn))
    ok, message = ButlrHook(MADE_UP).test_connection()
    assert not ok and shown in message and MADE_UP not in message and "connection" not in message, message


def test_the_connection_test_of_a_wrong_host_names_fields(nothing_listening: int) -> None:
    started = time.monotonic()
    ok, message = ButlrHook().test_connection()
    assert not ok and "refused the connection" in message and "(fields host and port)" in message, message
    assert "butlr_default" not in message and time.monotonic() - started < 8.0


pytestmark = pytest.mark.airflow_independent
