"""Issue 22, item 3: login answers follow the documented retry rules, and every message says what the
answer actually was (status, content type, size, a safe start), without a secret or a cut token.

Retried like any call: 429 and 5xx, and a 2xx that is not JSON (cut, an HTML page, empty). Final at
once: 400/401/403 (the credentials), another 4xx (the host), and JSON without a usable token. A UTF-8
byte-order mark before a valid answer is ignored (RFC 8259 lets a parser do so).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_butlr.exceptions import ButlrAuthError, ButlrDataError, ButlrRateLimitError
from tests.support.hostile import (
    DATA,
    DRIVERS,
    SECRET,
    Driver,
    HostileApi,
    assert_no_leak,
    exception_texts,
    outcome,
    sync_call,
    use_connection,
)

RETRIES = 2
CUT_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjbGllbnQtMTIzNDUifQ.c2lnbmF0dXJlLXRoYXQtaXMtY3V0"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    server = HostileApi()
    use_connection(monkeypatch, server, max_retries=RETRIES)
    yield server
    server.close()


def login_answer(status: int, body: str | bytes, content_type: str = "application/json") -> object:
    return lambda request: request.reply(status, body, content_type=content_type)


NOT_JSON = [
    pytest.param(
        '{"access_token": "' + CUT_TOKEN[:40], "application/json", '{"access_token": "…', id="cut JSON"
    ),
    pytest.param("<html><body>Sign in</body></html>", "text/html", "an HTML page", id="HTML"),
    pytest.param("", "application/json", "an empty body", id="empty"),
    pytest.param(
        f"access_token={CUT_TOKEN}&expires_in=3600", "application/x-www-form-urlencoded", "…", id="form"
    ),
]


@DRIVERS
@pytest.mark.parametrize(("body", "content_type", "shown"), NOT_JSON)
def test_a_2xx_login_that_is_not_json_is_retried_and_says_what_it_was(
    api: HostileApi, call: Driver, body: str, content_type: str, shown: str
) -> None:
    api.login_script = login_answer(200, body, content_type)
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert api.logins == RETRIES + 1  # a failed attempt, retried like any malformed 2xx answer
    assert isinstance(err, ButlrDataError), err
    text = str(err)
    assert "malformed JSON in a 200 login answer" in text and content_type in text and shown in text, text
    assert f"{len(body.encode())} bytes" in text, text
    assert "without an access_token" not in text  # the old, misleading message
    assert "\n" not in text
    assert_no_leak(exception_texts(err), SECRET, CUT_TOKEN[:20], CUT_TOKEN[20:40], where="message")


@DRIVERS
def test_a_byte_order_mark_before_a_valid_login_answer_is_ignored(api: HostileApi, call: Driver) -> None:
    answer = json.dumps({"access_token": api.token, "expires_in": 3600}).encode()
    api.login_script = login_answer(200, b"\xef\xbb\xbf" + answer)
    result, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert err is None and result == {"data": []} and api.logins == 1


@DRIVERS
def test_a_byte_order_mark_before_a_data_answer_is_ignored(api: HostileApi, call: Driver) -> None:
    api.script = lambda request: request.reply(200, b'\xef\xbb\xbf{"data": [1]}')
    result, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert err is None and result == {"data": [1]}


@DRIVERS
@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ('{"token_type": "bearer", "error": "' + CUT_TOKEN + '"}', '{"token_type": "…", "error": "…"}'),
        ('["not", "an", "object"]', "a JSON list"),
        ('{"access_token": ""}', "without an access_token"),
    ],
    ids=["no token", "a list", "an empty token"],
)
def test_a_json_login_answer_without_a_token_is_final_and_says_what_it_was(
    api: HostileApi, call: Driver, body: str, shown: str
) -> None:
    api.login_script = login_answer(200, body)
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert api.logins == 1  # well-formed JSON saying something else: no retry heals it
    assert isinstance(err, ButlrAuthError) and "HTTP 200" in str(err) and shown in str(err), err
    assert "application/json" in str(err)
    assert_no_leak(exception_texts(err), SECRET, CUT_TOKEN[:20], where="message")


@DRIVERS
@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_refused_login_is_final_and_names_the_credential_fields(
    api: HostileApi, call: Driver, status: int
) -> None:
    api.login_script = login_answer(status, '{"error": "access_denied", "message": "Unauthorized"}')
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert api.logins == 1
    assert isinstance(err, ButlrAuthError) and f"HTTP {status}" in str(err), err
    assert "connection butlr_default, fields password, login and extra.audience" in str(err)


@DRIVERS
@pytest.mark.parametrize("status", [404, 405])
def test_another_4xx_login_is_final_and_points_to_the_host(
    api: HostileApi, call: Driver, status: int
) -> None:
    api.login_script = login_answer(status, "<html>Not Found</html>", "text/html")
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert api.logins == 1
    assert isinstance(err, ButlrAuthError) and f"HTTP {status}" in str(err), err
    assert "connection butlr_default, field host" in str(err) and "client secret" not in str(err)


@DRIVERS
@pytest.mark.parametrize("status", [500, 503])
def test_a_failing_login_is_retried(api: HostileApi, call: Driver, status: int) -> None:
    api.login_script = login_answer(status, '{"message": "try later"}')
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert api.logins == RETRIES + 1 and f"HTTP {status}" in str(err), err


@DRIVERS
def test_a_throttled_login_waits_within_the_time_budget_not_the_retries(
    api: HostileApi, call: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 429 to the login is waited out like any other (its retries untouched), until the budget."""
    use_connection(monkeypatch, api, max_retries=RETRIES, max_rate_limit_wait=1)
    api.login_script = login_answer(429, '{"message": "try later"}')
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert isinstance(err, ButlrRateLimitError) and "extra.max_rate_limit_wait" in str(err), err
    assert api.logins > RETRIES + 1  # more answers 429 than the retries would have allowed


def test_the_default_connection_retries_a_malformed_login_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture above sets max_retries; without it the default budget applies (5 retries)."""
    server = HostileApi()
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT",
        json.dumps({"conn_type": "butlr", "host": server.url, "login": "id", "password": SECRET}),
    )
    try:
        server.login_script = login_answer(200, "<html>portal</html>", "text/html")
        _, err, _ = outcome(sync_call, "POST", DATA, {"q": 1})
        assert server.logins == 6 and isinstance(err, ButlrDataError), err
    finally:
        server.close()


pytestmark = pytest.mark.airflow_independent
