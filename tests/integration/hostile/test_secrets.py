"""Issue 13, echoed secrets: a server that echoes the token and the client secret back never gets
either (nor a 12-character prefix, nor an encoded or folded form) into an exception, ``.body``, a log
record at DEBUG, a trigger event, the test_connection text or XCom. Sync and async alike."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrAuthError, ButlrGraphQLError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.operators.butlr import ButlrOperator
from airflow_provider_butlr.triggers.butlr import ButlrTrigger
from tests.support.hostile import (
    DATA,
    DRIVERS,
    GRAPHQL,
    QUICK,
    SECRET,
    Driver,
    HostileApi,
    Request,
    assert_no_leak,
    exception_texts,
    hostile_api,
    log_texts,
    lower_hex,
    outcome,
    trigger_events,
)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    yield from hostile_api(monkeypatch)


# --- what an echoing server sends back ------------------------------------------------------------


def echo_body(style: str, token: str) -> tuple[str, str]:
    """(content type, body) of an answer that echoes the request's token and the client secret."""
    bearer = f"Bearer {token}"
    if style == "json":
        return "application/json", json.dumps(
            {
                "error": "invalid_request",
                "message": f"header Authorization: {bearer} refused for client_secret={SECRET}",
                "details": {"headers": {"Authorization": bearer}, "secret": SECRET},
            }
        )
    if style == "text":
        return "text/plain", f"Bad header\r\nAuthorization: {bearer}\r\nclient_secret:  {SECRET}\t(echo)"
    if style == "straddle":  # the secret and the token straddle the 300-character cut of error_text
        return "application/json", json.dumps({"message": "x" * 285 + SECRET + " " + "y" * 290 + token})
    if style == "percent":
        return "text/plain", (
            f"auth=Bearer%20{quote(token, safe='')}&secret={quote_plus(SECRET)}"
            f"&path=/{quote(SECRET)}&lower={lower_hex(quote(SECRET, safe=''))}"
        )
    if style == "cut":  # whitespace up to the 64 KiB error-body cut, then the token across the cut
        return "text/plain", " " * (64 * 1024 - 20) + token + " " + SECRET
    raise AssertionError(style)


def echoing(status: int, style: str) -> Any:
    def script(request: Request) -> None:
        token = request.authorization.removeprefix("Bearer ")
        content_type, body = echo_body(style, token)
        request.reply(status, body, content_type=content_type)

    return script


STATUSES = [400, 401, 403, 404, 500, 503]
STYLES = ["json", "text", "straddle", "percent", "cut"]


@DRIVERS
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("status", STATUSES)
def test_echoed_token_and_secret_never_leave_the_exchange(
    api: HostileApi, call: Driver, status: int, style: str, caplog: pytest.LogCaptureFixture
) -> None:
    api.script = echoing(status, style)
    caplog.set_level(logging.DEBUG)
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert isinstance(err, ButlrAPIError) and err.status == status
    if status in (401, 403):
        assert isinstance(err, ButlrAuthError)
    if status == 401:  # refused after the replay: one login more, then the typed error
        assert api.logins == 2
    assert_no_leak(exception_texts(err), api.token, SECRET, where="exception")
    assert_no_leak(log_texts(caplog.records), api.token, SECRET, where="log records")
    if status in (500, 503):  # the retry WARNING line was written and is clean
        assert any("retrying in" in r.getMessage() for r in caplog.records)


def graphql_echo(request: Request) -> None:
    token = request.authorization.removeprefix("Bearer ")
    request.reply(
        200,
        {
            "errors": [
                {
                    "message": f"forbidden for Bearer {token} (client_secret {SECRET})",
                    "path": ["sites", SECRET],
                    "extensions": {"code": "FORBIDDEN", "authorization": f"Bearer {token}"},
                },
                {"message": "x" * 290 + token},
                f"plain {quote(SECRET, safe='')}",
            ],
            "data": {"sites": None, "echo": {SECRET: token}},
        },
    )


@DRIVERS
def test_graphql_errors_echoing_token_and_secret_are_scrubbed(
    api: HostileApi, call: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    api.script = graphql_echo
    caplog.set_level(logging.DEBUG)
    _, err, _ = outcome(call, "POST", GRAPHQL, {"query": "{ sites { data { id } } }"}, graphql=True)
    assert isinstance(err, ButlrGraphQLError)
    assert "FORBIDDEN" in str(err)
    assert_no_leak(exception_texts(err), api.token, SECRET, where="ButlrGraphQLError")
    assert_no_leak(log_texts(caplog.records), api.token, SECRET, where="log records")


def test_test_connection_text_is_scrubbed(api: HostileApi, caplog: pytest.LogCaptureFixture) -> None:
    api.script = graphql_echo
    caplog.set_level(logging.DEBUG)
    ok, message = ButlrHook().test_connection()
    assert not ok and "FORBIDDEN" in message
    assert_no_leak([message], api.token, SECRET, where="test_connection")
    assert_no_leak(log_texts(caplog.records), api.token, SECRET, where="log records")


def test_login_refusal_echoing_the_secret_is_scrubbed(api: HostileApi) -> None:
    api.login_script = lambda request: request.reply(
        400, {"error": "invalid_client", "message": request.body.decode() + " " + SECRET}
    )
    ok, message = ButlrHook().test_connection()
    assert not ok and "invalid_client" in message
    assert_no_leak([message], SECRET, where="test_connection")


# --- on_failure_callback: an operator's exception ------------------------------------------------------


@pytest.mark.parametrize("status", [400, 403, 500])
def test_operator_failure_exception_is_scrubbed(api: HostileApi, status: int) -> None:
    api.script = echoing(status, "json")
    operator = ButlrOperator(task_id="echo", endpoint=DATA, json={"q": 1})
    with pytest.raises(ButlrAPIError) as raised:
        operator.execute({})
    assert_no_leak(exception_texts(raised.value), api.token, SECRET, where="operator exception")


# --- XCom: a 200 answer that echoes the secret and the token under any key ------------------------------


def xcom_echo(request: Request) -> None:
    token = request.authorization.removeprefix("Bearer ")
    request.reply(
        200,
        {
            "apiKey": SECRET,
            "authorization": f"Bearer {token}",
            "bearer": token,
            "nested": [{"note": f"issued {token} for {quote_plus(SECRET)}"}],
            SECRET: "as a key",
        },
    )


@pytest.mark.parametrize("with_filter", [False, True], ids=["whole", "filtered"])
def test_operator_xcom_redacts_echoed_secret_and_token_by_value(api: HostileApi, with_filter: bool) -> None:
    api.script = xcom_echo
    operator = ButlrOperator(
        task_id="echo",
        endpoint="/api/v3/whoami",
        response_filter=(lambda payload: {"k": payload["apiKey"], "b": payload["bearer"]})
        if with_filter
        else None,
    )
    value = operator.execute({})
    text = json.dumps(value)
    assert "***" in text
    assert_no_leak([text], api.token, SECRET, where="XCom")


# --- ButlrTrigger events ---------------------------------------------------------------------------------


def run_trigger(endpoint: str, *, duration: float = 8.0, **hook_params: Any) -> dict[str, Any]:
    plan = {"requests": [{"endpoint": endpoint, "json": {"query": "{ sites { data { id } } }"}}]}
    trigger = ButlrTrigger(
        plan=plan,
        deadline=time.time() + duration,
        poll_interval=0.05,
        max_consecutive_failures=1,
        hook_params={**QUICK, **hook_params},
    )

    events = trigger_events(trigger)
    assert len(events) == 1, events
    return events[0]


@pytest.mark.parametrize("status", [400, 401, 403, 500])
def test_trigger_events_are_scrubbed_for_echoing_rest_errors(
    api: HostileApi, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    api.script = echoing(status, "json")
    caplog.set_level(logging.DEBUG)
    event = run_trigger("/api/v3/occupancy")
    assert event["status"] == "error"
    assert_no_leak([json.dumps(event)], api.token, SECRET, where="trigger event")
    assert_no_leak(log_texts(caplog.records), api.token, SECRET, where="log records")


def test_trigger_events_are_scrubbed_for_echoing_graphql_errors(
    api: HostileApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.script = graphql_echo
    caplog.set_level(logging.DEBUG)
    event = run_trigger(GRAPHQL)
    assert event["status"] == "error" and "error" in event["message"]
    assert_no_leak([json.dumps(event)], api.token, SECRET, where="trigger event")
    assert_no_leak(log_texts(caplog.records), api.token, SECRET, where="log records")


# The exchange and its drivers against loopback servers (like the fault matrix): run once, not per
# Airflow minor (the version matrix leaves airflow_independent tests to the main test step).
pytestmark = pytest.mark.airflow_independent
