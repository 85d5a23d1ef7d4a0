"""Issue 13, every failure is a ButlrError, and redirects: deeply nested JSON anywhere (a 200, an error
body, the login, GraphQL, the operator's XCom, the trigger) ends as a ButlrError or a result, never a
RecursionError; year 0001 is zero-padded; cross-origin redirects are refused naming the host and
never touch the token cache; same-origin ones are followed, bounded. Sync and async alike."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_butlr.client.calls import url_for
from airflow_provider_butlr.client.settings import origin_of, settings_from_fields
from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrConfigurationError, ButlrError
from airflow_provider_butlr.operators.butlr import ButlrOperator
from airflow_provider_butlr.reporting.times import format_time as format_rfc3339
from airflow_provider_butlr.triggers.butlr import ButlrTrigger
from tests.support.hostile import (
    DATA,
    DRIVERS,
    GRAPHQL,
    QUICK,
    Driver,
    HostileApi,
    Request,
    hostile_api,
    outcome,
    trigger_events,
)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    yield from hostile_api(monkeypatch)


# --- deeply nested JSON ---------------------------------------------------------------------------------

DEPTHS = [50, 400, 700, 900, 990, 3000, 200_000]


def deep(kind: str, depth: int) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def answering(status: int, text: str) -> Any:
    return lambda request: request.reply(status, text)


@DRIVERS
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("kind", ["list", "dict"])
@pytest.mark.parametrize("status", [200, 400, 500])
def test_deep_json_in_an_answer_is_a_result_or_a_butlr_error(
    api: HostileApi, call: Driver, status: int, kind: str, depth: int
) -> None:
    body = deep(kind, depth) if status == 200 else '{"error": ' + deep(kind, depth) + "}"
    api.script = answering(status, body)
    result, err, _ = outcome(call, "POST", DATA, {"q": 1})
    if status != 200:
        assert isinstance(err, ButlrAPIError) and err.status == status
    elif err is None:
        assert isinstance(result, (list, dict))


@DRIVERS
@pytest.mark.parametrize("depth", [900, 200_000])
@pytest.mark.parametrize("where", ["data", "errors"])
def test_deep_json_in_a_graphql_answer_is_a_butlr_error(
    api: HostileApi, call: Driver, where: str, depth: int
) -> None:
    api.script = answering(200, '{"' + where + '": [' + deep("dict", depth) + "]}")
    _, err, _ = outcome(call, "POST", GRAPHQL, {"query": "{ sites { data { id } } }"}, graphql=True)
    if where == "errors" or depth > 1000:
        assert isinstance(err, ButlrError)


@DRIVERS
@pytest.mark.parametrize("depth", [900, 200_000])
@pytest.mark.parametrize("status", [200, 400])
def test_deep_json_in_the_login_answer_is_a_butlr_error(
    api: HostileApi, call: Driver, status: int, depth: int
) -> None:
    api.login_script = answering(status, '{"access_token": ' + deep("list", depth) + "}")
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert isinstance(err, ButlrError)


@pytest.mark.parametrize("depth", [400, 900, 990, 200_000])
def test_the_operator_turns_deep_json_into_a_result_or_a_butlr_error(api: HostileApi, depth: int) -> None:
    api.script = answering(200, deep("dict", depth))
    operator = ButlrOperator(task_id="deep", endpoint="/api/v3/anything")
    outcome(lambda: operator.execute({}))


@pytest.mark.parametrize("depth", [900, 200_000])
def test_the_trigger_ends_with_one_event_on_deep_json(api: HostileApi, depth: int) -> None:
    api.script = answering(200, '{"data": ' + deep("dict", depth) + "}")
    trigger = ButlrTrigger(
        plan={
            "requests": [{"endpoint": "/api/v3/occupancy"}],
            "conditions": [{"type": "value_at", "path": "data.a.a", "op": "!=", "value": None}],
        },
        deadline=time.time() + 10,
        poll_interval=0.05,
        max_consecutive_failures=1,
        hook_params={**QUICK, "max_retries": 0},
    )

    events = trigger_events(trigger)
    assert len(events) == 1 and events[0]["status"] in ("success", "error"), events
    assert "RecursionError" not in json.dumps(events), events


# --- year 0001 -------------------------------------------------------------------------------------------


def test_year_one_is_zero_padded() -> None:
    assert format_rfc3339(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"


def test_year_one_is_refused_before_any_request(api: HostileApi) -> None:
    """Year 0001 used to reach the server as '1-01-01T00:00:00Z' (a 400); now it is refused locally,
    naming the field, and times are always formatted with four-digit years."""
    from airflow_provider_butlr.exceptions import ButlrConfigurationError
    from airflow_provider_butlr.reporting.planning import ReportingQuery
    from airflow_provider_butlr.reporting.times import format_time as format_rfc3339

    bodies: list[Any] = []
    api.script = lambda request: bodies.append(request)
    with pytest.raises(ButlrConfigurationError, match="start"):
        ReportingQuery.build(
            "room_occupancy",
            assets={"rooms": ["room_1"]},
            start=datetime(1, 1, 1, tzinfo=UTC),
            stop=datetime(1, 1, 1, 1, tzinfo=UTC),
        )
    assert bodies == []
    assert format_rfc3339(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"


# --- redirects --------------------------------------------------------------------------------------------


@pytest.fixture
def foreign() -> Iterator[HostileApi]:
    """Another origin (127.0.0.2): answers 401 to everything, as a hostile host would."""
    server = HostileApi(host="127.0.0.2")
    server.script = answering(401, '{"error": "who are you"}')
    server.login_script = server.script
    yield server
    server.close()


def redirecting(location: str, status: int = 307) -> Any:
    def script(request: Request) -> None:
        request.reply(status, b"", headers={"Location": location})

    return script


@DRIVERS
@pytest.mark.parametrize("form", ["absolute", "scheme-relative"])
def test_a_cross_origin_redirect_is_refused_and_never_touches_the_token(
    api: HostileApi, foreign: HostileApi, call: Driver, form: str
) -> None:
    target = (
        f"{foreign.url}/steal" if form == "absolute" else f"//127.0.0.2:{foreign.server.server_address[1]}/x"
    )
    api.script = redirecting(target)
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert isinstance(err, ButlrAPIError) and "127.0.0.2" in str(err) and "another host" in str(err)
    assert foreign.seen == []  # the foreign host never got a request (nor a token, nor its 401)
    api.script = answering(200, '{"data": []}')
    assert outcome(call, "POST", DATA, {"q": 1})[0] == {"data": []}
    assert api.logins == 1  # the refused redirect did not drop the token from the process-wide cache


@DRIVERS
def test_a_login_redirected_to_another_origin_never_sends_the_secret_there(
    api: HostileApi, foreign: HostileApi, call: Driver
) -> None:
    api.login_script = redirecting(f"{foreign.url}/login", 308)
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert isinstance(err, ButlrAPIError) and "127.0.0.2" in str(err)
    assert foreign.seen == []


@DRIVERS
def test_same_origin_redirects_are_followed_and_bounded(api: HostileApi, call: Driver) -> None:
    def script(request: Request) -> None:
        if request.path.startswith("/api/loop"):
            request.reply(302, b"", headers={"Location": "/api/loop?next=http://elsewhere.example/x"})
        elif request.path.startswith("/api/new"):
            request.reply(200, {"path": request.path, "auth": bool(request.authorization)})
        else:
            request.reply(308, b"", headers={"Location": "/api/new?next=http://elsewhere.example/x"})

    api.script = script
    result, err, _ = outcome(call, "POST", "/api/old", {"q": 1})
    assert err is None and result == {"path": "/api/new?next=http://elsewhere.example/x", "auth": True}
    before = len(api.seen)
    _, err, _ = outcome(call, "GET", "/api/loop")
    assert isinstance(err, ButlrAPIError) and "redirected more than" in str(err)
    assert len(api.seen) - before <= 8  # bounded: the first request and at most 5 redirects (+ a login)


def test_a_relative_path_with_a_url_in_its_query_is_allowed() -> None:
    settings = settings_from_fields(
        conn_id="c", host="https://api.example", login="id", password="secret-123", extra={}
    )
    assert (
        url_for(settings, "/api/v3/reporting?next=http://x")
        == "https://api.example/api/v3/reporting?next=http://x"
    )
    with pytest.raises(ButlrConfigurationError, match="not on the Butlr API host"):
        url_for(settings, "http://x/api/v3/reporting")


def test_idna_hosts_compare_as_punycode() -> None:
    assert origin_of("https://bücher.example") == origin_of("https://xn--bcher-kva.example:443/x")
    assert origin_of("https://BÜCHER.example.") == origin_of("https://xn--bcher-kva.example")
    settings = settings_from_fields(
        conn_id="c", host="https://bücher.example", login="id", password="secret-123", extra={}
    )
    assert (
        url_for(settings, "https://xn--bcher-kva.example/api/v3/x")
        == "https://xn--bcher-kva.example/api/v3/x"
    )
    assert origin_of("https://bücher.example") != origin_of("https://bucher.example")


# The exchange and its drivers against loopback servers (like the fault matrix): run once, not per
# Airflow minor (the version matrix leaves airflow_independent tests to the main test step).
pytestmark = pytest.mark.airflow_independent
