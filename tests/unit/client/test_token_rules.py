"""Issue 13, "Time": tokens that arrive already expired, absurd lifetimes, short tokens shared by many
threads, and a login answer whose token holds CR/LF. Real HTTP: the emulator or a tiny loopback server."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrAuthError, ButlrError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
from tests.conftest import connection_json

SITES_QUERY = "query { sites { data { id } } }"
SECRET = "token-rules-secret-7Hq2Lw"


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


@dataclass
class LoginScript:
    """What the loopback server answers: the raw login body per login, and whether data calls 401."""

    login_body: Any = None  # a callable(n) -> bytes
    refuse_data: bool = False
    logins: int = 0
    data_calls: int = 0
    tokens_seen: list[str] = field(default_factory=list)


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoginScript]:
    """A minimal Butlr: POST .../login answers ``script.login_body(n)``; GraphQL answers an empty site list."""
    script = LoginScript()
    lock = threading.Lock()

    class Api(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.endswith("/login"):
                with lock:
                    script.logins += 1
                    n = script.logins
                body, status = script.login_body(n), 200
            else:
                with lock:
                    script.data_calls += 1
                    script.tokens_seen.append(self.headers.get("Authorization", ""))
                if script.refuse_data:
                    body, status = b'{"error": "unauthorized", "message": "Token expired"}', 401
                else:
                    body, status = b'{"data": {"sites": {"data": []}}}', 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    conn = {
        "conn_type": "butlr",
        "host": f"http://127.0.0.1:{server.server_address[1]}",
        "login": "rules-client",
        "password": SECRET,
        "extra": {"max_retries": 0, "timeout": 5},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", json.dumps(conn))
    yield script
    server.shutdown()
    server.server_close()


def _answer(token: str, **extra: Any) -> bytes:
    return json.dumps({"access_token": token, "token_type": "Bearer", **extra}).encode()


# --- tokens that arrive already expired ------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda n: _answer(f"tok-{n}-abcdefghijkl", expires_in=0), id="expires_in-0"),
        pytest.param(
            lambda n: _answer(f"tok-{n}-abcdefghijkl", expires_in=0.2), id="expires_in-below-margin"
        ),
        pytest.param(
            lambda n: _answer(_jwt({"exp": int(time.time()) - 60, "n": n})), id="jwt-exp-in-the-past"
        ),
    ],
)
def test_a_token_that_arrives_expired_is_not_a_login_per_request(loopback: LoginScript, answer: Any) -> None:
    loopback.login_body = answer
    hook = ButlrHook()
    for _ in range(10):
        hook.graphql(SITES_QUERY)
    assert loopback.data_calls == 10
    assert loopback.logins == 1  # before the fix: 10


async def test_the_async_hook_does_not_log_in_per_request_for_an_expired_token(loopback: LoginScript) -> None:
    loopback.login_body = lambda n: _answer(f"tok-{n}-abcdefghijkl", expires_in=0.5)
    async with ButlrAsyncHook() as hook:
        for _ in range(10):
            await hook.arequest_json("POST", "/api/v3/graphql", json={"query": SITES_QUERY})
    assert loopback.logins == 1


def test_a_server_that_refuses_its_own_fresh_tokens_gets_a_clear_error_not_a_login_storm(
    loopback: LoginScript,
) -> None:
    loopback.login_body = lambda n: _answer(f"tok-{n}-abcdefghijkl", expires_in=0)
    loopback.refuse_data = True
    hook = ButlrHook()
    errors = []
    for _ in range(5):
        with pytest.raises(ButlrAuthError) as err:
            hook.graphql(SITES_QUERY)
        errors.append(str(err.value))
    assert loopback.logins <= 2  # the first login, at most one replay login; then refused locally
    assert any("refusing to log in again" in text for text in errors), errors
    assert not any("tok-" in text for text in errors)


# --- absurd lifetimes are clamped --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            lambda n: b'{"access_token": "tok-big-%d-abcdefgh", "expires_in": 1%s}' % (n, b"0" * 400),
            id="expires_in",
        ),
        pytest.param(lambda n: _answer(_jwt({"exp": 10**400, "n": n})), id="jwt-exp"),
    ],
)
def test_absurd_lifetimes_are_clamped_not_an_overflow(loopback: LoginScript, raw: Any) -> None:
    loopback.login_body = raw
    hook = ButlrHook()
    for _ in range(3):
        hook.graphql(SITES_QUERY)
    assert loopback.logins == 1


@pytest.mark.parametrize("literal", [b"Infinity", b"NaN", b"-Infinity"])
def test_non_json_number_literals_in_a_login_answer_are_malformed_json(
    loopback: LoginScript, literal: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One JSON decoder for every answer (msgspec): ``Infinity`` is not JSON, so such a login answer
    is a failed attempt (retried), then a ButlrDataError that says what the answer was."""
    loopback.login_body = lambda n: (
        b'{"access_token": "tok-inf-%d-abcdefgh", "expires_in": %s}' % (n, literal)
    )
    with pytest.raises(ButlrError, match=r"malformed JSON in a 200 login answer \(application/json"):
        ButlrHook(max_retries=1, retry_wait_initial=0.01, retry_wait_max=0.01).graphql(SITES_QUERY)
    assert loopback.logins == 2


def test_lifetime_parsing_clamps_and_prefers_a_relative_lifetime() -> None:
    from airflow_provider_butlr.client.tokens.model import MAX_TOKEN_LIFETIME, token_lifetime

    now = 1_000_000.0
    assert token_lifetime({"expires_in": 10**400}, "opaque", now) == MAX_TOKEN_LIFETIME
    assert token_lifetime({"expires_in": -5}, "opaque", now) == 0.0
    assert token_lifetime({"expires_in": True}, "opaque", now) is None
    # exp - iat is a relative lifetime: immune to a skewed local clock
    assert token_lifetime({}, _jwt({"iat": 5, "exp": 605}), now) == 600.0
    assert token_lifetime({}, _jwt({"exp": now + 90}), now) == 90.0
    assert token_lifetime({}, _jwt({"exp": 10**400}), now) == MAX_TOKEN_LIFETIME
    assert token_lifetime({"expires_in": float("inf")}, "opaque", now) == MAX_TOKEN_LIFETIME
    assert token_lifetime({"expires_in": float("nan")}, "opaque", now) is None
    assert token_lifetime({}, "opaque", now) is None


def test_the_refresh_schedule_survives_whole_second_jwt_times_and_stale_tokens() -> None:
    from airflow_provider_butlr.client.tokens.model import STALE_TOKEN_COOLDOWN, AccessToken

    # exp = int(iat) + 2 lives between 1 and 2 s: refresh after at most 1 s
    two_seconds = AccessToken("t", obtained_at=100.0, expires_at=102.0)
    assert not two_seconds.arrived_stale and two_seconds.refresh_at <= 101.0
    hour = AccessToken("t", obtained_at=0.0, expires_at=3600.0)
    assert hour.refresh_at == 3300.0
    # already expired on arrival: used for the cool-down, never a login per call
    expired = AccessToken("t", obtained_at=100.0, expires_at=90.0)
    assert expired.arrived_stale and expired.refresh_at == 100.0 + STALE_TOKEN_COOLDOWN


# --- 20 threads sharing a token of a few seconds -------------------------------------------------------


def test_twenty_threads_sharing_a_three_second_token_see_no_401_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_butlr.testing import ButlrEmulator

    with ButlrEmulator(port=0, token_lifetime=3, latency=0.05) as emu:
        # retries absorb the loaded emulator's dropped connections; a 401 is never retried, only replayed
        monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emu, max_retries=2))
        hook = ButlrHook()
        stop = time.monotonic() + 7.5  # five refresh boundaries crossed
        failures: list[str] = []

        def worker() -> int:
            calls = 0
            while time.monotonic() < stop:
                try:
                    hook.graphql(SITES_QUERY)
                except ButlrError as err:
                    failures.append(str(err))
                calls += 1
            return calls

        with ThreadPoolExecutor(20) as pool:
            calls = sum(pool.map(lambda _: worker(), range(20)))
        assert calls > 40
        assert failures == []
        assert emu.counters.logins * 10 <= calls  # a login per refresh, not per call


# --- a token with CR/LF ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["tok\r\nX-Injected: 1", "tok\nabc", "tok with space", "tok\x00nul", "tök"])
def test_a_login_token_with_control_characters_is_a_butlr_auth_error_without_the_token(
    loopback: LoginScript, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    loopback.login_body = lambda n: _answer(bad + "-SECRETPART-abcdefgh", expires_in=3600)
    with caplog.at_level(logging.DEBUG), pytest.raises(ButlrAuthError) as err:
        ButlrHook().graphql(SITES_QUERY)
    assert "not a valid bearer token" in str(err.value)
    assert "SECRETPART" not in str(err.value) and "SECRETPART" not in repr(err.value.__dict__)
    assert err.value.__cause__ is None or "SECRETPART" not in str(err.value.__cause__)
    assert "SECRETPART" not in caplog.text
    assert loopback.data_calls == 0


async def test_the_async_hook_refuses_a_crlf_token_the_same_way(loopback: LoginScript) -> None:
    loopback.login_body = lambda n: _answer("tok\r\nX-Injected: 1-SECRETPART", expires_in=3600)
    async with ButlrAsyncHook() as hook:
        with pytest.raises(ButlrAuthError) as err:
            await hook.arequest_json("POST", "/api/v3/graphql", json={"query": SITES_QUERY})
    assert "SECRETPART" not in str(err.value)
    assert loopback.data_calls == 0


# The exchange and its drivers against loopback servers (like the fault matrix): run once, not per
# Airflow minor (the version matrix leaves airflow_independent tests to the main test step).
pytestmark = pytest.mark.airflow_independent
