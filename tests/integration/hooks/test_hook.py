"""ButlrHook against the emulator over real HTTP: tokens, retries, 401 replay, GraphQL, secrets."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
from typing import Any

import pytest
import time_machine

from airflow_provider_butlr.client.tokens.cache import TOKEN_CACHE
from airflow_provider_butlr.exceptions import (
    ButlrAPIError,
    ButlrAuthError,
    ButlrGraphQLError,
    ButlrRateLimitError,
)
from airflow_provider_butlr.hooks.butlr import ButlrHook
from tests.conftest import TEST_CLIENT_SECRET, connection_json

SITES = "{ sites { data { id name } } }"
GRAPHQL = "/api/v3/graphql"


def _login_count(emu: Any) -> int:
    return int(emu.counters.logins)


def test_thousand_calls_across_hooks_cause_one_login(butlr_conn: Any) -> None:
    hooks = [ButlrHook() for _ in range(5)]
    for i in range(1000):
        data = hooks[i % 5].graphql(SITES)
        assert data["sites"]["data"]
    assert _login_count(butlr_conn) == 1
    assert butlr_conn.counters.requests(GRAPHQL) == 1000


def test_concurrent_first_calls_share_one_login(butlr_conn: Any) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            hook = ButlrHook()
            for _ in range(20):
                hook.graphql(SITES)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _login_count(butlr_conn) == 1


def test_short_lived_token_refreshed_before_expiry_without_401(butlr_conn: Any) -> None:
    butlr_conn.config.token_lifetime = 60
    hook = ButlrHook()
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=True) as traveller:
        for _ in range(50):  # a 60 s token is not re-minted on every call
            hook.graphql(SITES)
        assert _login_count(butlr_conn) == 1
        traveller.shift(56)  # inside the refresh margin, before expiry
        hook.graphql(SITES)
        assert _login_count(butlr_conn) == 2
        traveller.shift(30)
        hook.graphql(SITES)
    statuses = [record.status for record in butlr_conn.counters.log]
    assert 401 not in statuses


def test_revoked_token_is_replayed_once_after_a_fresh_login(butlr_conn: Any) -> None:
    hook = ButlrHook()
    hook.graphql(SITES)
    butlr_conn.revoke_all_tokens()
    assert hook.graphql(SITES)["sites"]["data"]
    assert _login_count(butlr_conn) == 2
    statuses = [r.status for r in butlr_conn.counters.log if r.path == GRAPHQL]
    assert statuses == [200, 401, 200]


def test_second_401_raises_auth_error(butlr_conn: Any) -> None:
    hook = ButlrHook()
    hook.graphql(SITES)
    butlr_conn.faults.add(path=GRAPHQL, kind="unauthorized")
    with pytest.raises(ButlrAuthError, match="401") as info:
        hook.graphql(SITES)
    assert butlr_conn.counters.requests(GRAPHQL) == 3  # first call, then 401 + one replay
    assert _login_count(butlr_conn) == 2
    assert TEST_CLIENT_SECRET not in str(info.value)


def test_429_with_retry_after_waits_then_succeeds(butlr_conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=429, retry_after="1", times=1)
    caplog.set_level(logging.WARNING)
    hook = ButlrHook(retry_wait_initial=5.0)  # the backoff would be 5 s: Retry-After must win
    assert hook.graphql(SITES)
    assert "retrying in 1.00 s" in caplog.text
    assert butlr_conn.counters.requests(GRAPHQL) == 2


def test_retry_after_is_capped(butlr_conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=503, retry_after="3600", times=1)
    caplog.set_level(logging.WARNING)
    assert ButlrHook(retry_after_cap=0.2).graphql(SITES)
    assert "retrying in 0.20 s" in caplog.text


def test_5xx_is_retried_then_succeeds(butlr_conn: Any, fast_hook: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=503, at_calls={1, 2})
    assert fast_hook().graphql(SITES)["sites"]["data"]
    assert butlr_conn.counters.requests(GRAPHQL) == 3


def test_persistent_5xx_fails_with_endpoint_status_and_attempts(butlr_conn: Any, fast_hook: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=502, body="<html>bad gateway</html>")
    with pytest.raises(ButlrAPIError) as info:
        fast_hook(max_retries=2).graphql(SITES)
    message = str(info.value)
    assert "POST /api/v3/graphql" in message and "3 attempt(s)" in message and "502" in message
    assert info.value.status == 502 and info.value.attempts == 3
    assert butlr_conn.counters.requests(GRAPHQL) == 3


def test_persistent_429_raises_rate_limit_error(butlr_conn: Any, fast_hook: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=429, retry_after="0")
    with pytest.raises(ButlrRateLimitError) as info:
        fast_hook(max_retries=1, max_rate_limit_wait=0.05).graphql(SITES)
    assert info.value.retry_after == 0.0
    # Retry-After 0, then at least the backoff (0.01, 0.02 s): the third wait (0.04 s) would pass 0.05 s
    assert butlr_conn.counters.requests(GRAPHQL) == 4
    assert "it waited 0 s over 4 answer(s) 429" in str(info.value)


def test_dropped_connection_is_retried(butlr_conn: Any, fast_hook: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="drop", at_calls={1})
    assert fast_hook().graphql(SITES)
    assert butlr_conn.counters.requests(GRAPHQL) == 2


def test_truncated_json_is_retried(butlr_conn: Any, fast_hook: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="truncated_json", at_calls={1})
    assert fast_hook().graphql(SITES)["sites"]["data"]


def test_read_timeout_is_retried(butlr_conn: Any, fast_hook: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="delay", delay=1.5, at_calls={1})
    assert fast_hook(timeout=0.5).graphql(SITES)
    assert butlr_conn.counters.requests(GRAPHQL) == 2


@pytest.mark.parametrize(
    ("override", "status"),
    [({"password": "wrong-secret-value-123"}, 401), ({"audience": "https://not-butlr/"}, 403)],
)
def test_refused_login_is_not_retried_and_hides_the_secret(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, override: dict[str, str], status: int
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator, **override))
    with pytest.raises(ButlrAuthError) as info:
        ButlrHook().graphql(SITES)
    assert info.value.status == status
    assert emulator.counters.requests("/api/v2/clients/login") == 1
    assert "wrong-secret-value-123" not in str(info.value) and TEST_CLIENT_SECRET not in str(info.value)
    assert f"HTTP {status}" in str(info.value)


def test_login_5xx_is_retried(butlr_conn: Any, fast_hook: Any) -> None:
    butlr_conn.faults.add(path="/api/v2/clients/login", kind="status", status=500, at_calls={1})
    assert fast_hook().get_token()
    assert butlr_conn.counters.requests("/api/v2/clients/login") == 2


def test_changed_secret_never_reuses_a_token(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GOOD", connection_json(emulator))
    monkeypatch.setenv("AIRFLOW_CONN_BAD", connection_json(emulator, password="another-secret-456"))
    assert ButlrHook("good").get_token()
    with pytest.raises(ButlrAuthError):
        ButlrHook("bad").get_token()


def test_password_grant(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT",
        connection_json(emulator, login=emulator.username, password=emulator.password, auth_type="password"),
    )
    assert ButlrHook().graphql(SITES)["sites"]["data"]
    assert emulator.counters.requests("/api/v2/login") == 1
    assert emulator.counters.requests("/api/v2/clients/login") == 0


def test_expiry_from_jwt_exp_when_expires_in_is_missing(butlr_conn: Any) -> None:
    butlr_conn.config.expires_in_mode = "absent"
    butlr_conn.config.token_lifetime = 1200
    hook = ButlrHook()
    hook.get_token()
    cached = TOKEN_CACHE._tokens[hook.settings.cache_key]
    assert 1100 < cached.lifetime <= 1201


def test_graphql_errors_raise_even_with_partial_data(butlr_conn: Any) -> None:
    hook = ButlrHook()
    query = "{ sensors { data { id roomID } } }"  # roomID errors for sensors without a room
    with pytest.raises(ButlrGraphQLError) as info:
        hook.graphql(query)
    assert info.value.errors and info.value.data is not None


def test_graphql_unauthenticated_is_handled_like_401(butlr_conn: Any) -> None:
    butlr_conn.config.graphql_auth_error_mode = "graphql"
    hook = ButlrHook()
    hook.graphql(SITES)
    butlr_conn.revoke_all_tokens()
    assert hook.graphql(SITES)["sites"]["data"]
    assert _login_count(butlr_conn) == 2


def test_no_extra_is_sent_as_a_header(butlr_conn: Any) -> None:
    response = ButlrHook().request("POST", GRAPHQL, json={"query": SITES})
    sent = {k.lower() for k in response.request.headers}
    assert not sent & {"audience", "auth_type", "timeout", "max_retries"}
    assert "authorization" in sent


def test_session_is_reused(butlr_conn: Any) -> None:
    hook = ButlrHook()
    assert hook.get_conn() is hook.get_conn()


def test_secrets_never_reach_the_logs(
    butlr_conn: Any, caplog: pytest.LogCaptureFixture, fast_hook: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=503, at_calls={2})
    hook = fast_hook()
    hook.graphql(SITES)
    butlr_conn.revoke_all_tokens()
    hook.graphql(SITES)
    hook.test_connection()
    assert butlr_conn.issued_tokens
    for secret in [TEST_CLIENT_SECRET, *butlr_conn.issued_tokens]:
        assert secret not in caplog.text


def test_test_connection_success(butlr_conn: Any) -> None:
    ButlrHook().get_token()
    ok, message = ButlrHook().test_connection()
    assert ok, message
    assert "site(s) visible" in message
    assert _login_count(butlr_conn) == 2  # always a fresh login, even with a cached token


def test_test_connection_bad_credentials(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator, password="not-the-secret-789"))
    ok, message = ButlrHook().test_connection()
    assert not ok
    assert "401" in message and "not-the-secret-789" not in message


def test_test_connection_unreachable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT",
        json.dumps(
            {
                "conn_type": "butlr",
                "host": f"http://127.0.0.1:{port}",
                "login": "id",
                "password": "pw-secret-1",
            }
        ),
    )
    ok, message = ButlrHook().test_connection()
    assert not ok
    assert "connection failed" in message and "pw-secret-1" not in message


def test_uri_form_connection(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import quote

    uri = (
        f"butlr://{quote(emulator.client_id, safe='')}:{quote(emulator.client_secret, safe='')}"
        f"@{quote(emulator.url, safe='')}/?audience={quote(emulator.audience, safe='')}"
        "&auth_type=client_credentials&timeout=7&max_retries=2"
    )
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", uri)
    hook = ButlrHook()
    assert hook.settings.timeout == 7.0 and hook.settings.max_retries == 2
    assert hook.settings.base_url == emulator.url
    assert hook.graphql(SITES)["sites"]["data"]


def test_json_form_connection(butlr_conn: Any) -> None:
    hook = ButlrHook()
    assert hook.settings.base_url == butlr_conn.url
    assert hook.settings.timeout == 10.0 and hook.settings.max_retries == 3
    assert "secret" not in repr(hook.settings).lower() or TEST_CLIENT_SECRET not in repr(hook.settings)


def test_constructor_touches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_BUTLR_DEFAULT", raising=False)
    hook = ButlrHook("does_not_exist")  # no lookup, no network at construction
    assert hook.butlr_conn_id == "does_not_exist"


@pytest.mark.parametrize(
    "header",
    [
        "Sun, 06 Nov 1994 08:49:40 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:40 GMT",  # RFC 850
        "Sun Nov  6 08:49:40 1994",  # asctime: no zone, but HTTP dates are always GMT (RFC 9110)
        "Sun, 06 Nov 1994 08:49:40 -0000",
    ],
)
def test_retry_after_http_dates_are_gmt_whatever_the_local_timezone(
    header: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from airflow_provider_butlr.client.retry import parse_retry_after

    now = dt.datetime(1994, 11, 6, 8, 49, 37, tzinfo=dt.UTC).timestamp()
    monkeypatch.setenv("TZ", "America/New_York")  # a worker not on UTC
    time.tzset()
    try:
        assert parse_retry_after(header, now=now) == 3.0
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Sun, 06 Nov 1994 08:40:00 GMT", 0.0), ("-5", 0.0), ("soon", None), ("nan", None), ("", None)],
)
def test_retry_after_past_dates_and_garbage(header: str, expected: float | None) -> None:
    from airflow_provider_butlr.client.retry import parse_retry_after

    now = dt.datetime(1994, 11, 6, 8, 49, 37, tzinfo=dt.UTC).timestamp()
    assert parse_retry_after(header, now=now) == expected


def test_a_403_drops_the_cached_token(butlr_conn: Any) -> None:
    # Butlr answers 401 or 403 for a bad token (MCP clears its cache on both): after a 403 the
    # process (e.g. a long-lived triggerer) must not keep sending that token until it expires.
    hook = ButlrHook()
    hook.graphql(SITES)
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=403, times=1)
    with pytest.raises(ButlrAuthError, match="HTTP 403"):
        hook.graphql(SITES)
    assert butlr_conn.counters.requests(GRAPHQL) == 2  # no replay after a 403
    assert hook.graphql(SITES)["sites"]["data"]
    assert _login_count(butlr_conn) == 2


def test_errors_survive_pickling(butlr_conn: Any, fast_hook: Any) -> None:
    # e.g. a hook call in a ProcessPoolExecutor worker: the parent must get the error, not a TypeError
    import pickle

    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=429, retry_after="0")
    errors: list[ButlrAPIError] = []
    with pytest.raises(ButlrRateLimitError) as rate_limited:
        fast_hook(max_retries=0, max_rate_limit_wait=0).graphql(SITES)
    errors.append(rate_limited.value)
    butlr_conn.faults.clear()
    with pytest.raises(ButlrGraphQLError) as graphql_error:
        ButlrHook().graphql("{ sensors { data { id roomID } } }")
    errors.append(graphql_error.value)
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert vars(copy) == vars(error)


def test_a_204_answer_is_none_not_malformed_json(butlr_conn: Any, fast_hook: Any) -> None:
    # DELETE /api/v1/client/{id} answers 204 without a body (played by the fault schedule).
    butlr_conn.faults.add(path="/api/v1/client", kind="status", status=204, body=b"")
    with fast_hook() as hook:
        assert hook.request_json("DELETE", "/api/v1/client/client_x") is None
    assert butlr_conn.counters.requests("/api/v1/client/client_x") == 1
