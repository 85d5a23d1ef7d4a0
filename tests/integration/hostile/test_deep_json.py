"""Issue 22, item 2: deep JSON past the old 1 MiB depth check, and every walk over an answer.

"Deeper than 128 levels is malformed" holds for an answer of any size (2 MiB bodies here, where the
old check stopped looking), for GraphQL ``errors`` and ``data``, for a reporting answer's
``page_info``, and for the operator and the trigger; and no walk over an answer recurses: the
scrubber, the credential redaction, the rows of a poll, a condition's path and the reporting
reader take a structure 100,000 levels deep and answer with a result or a ButlrDataError.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrDataError, ButlrError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.operators.butlr import ButlrOperator
from airflow_provider_butlr.triggers.butlr import ButlrTrigger
from tests.support.hostile import (
    DATA,
    DRIVERS,
    GRAPHQL,
    QUICK,
    Driver,
    HostileApi,
    hostile_api,
    outcome,
    trigger_events,
)

PAD = '"pad": "' + "x" * (2 * 1024 * 1024) + '"'  # 2 MiB: past the size the old check looked at


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    yield from hostile_api(monkeypatch)


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def answering(text: str) -> Any:
    return lambda request: request.reply(200, text)


@DRIVERS
@pytest.mark.parametrize("depth", [129, 200, 700, 900])
@pytest.mark.parametrize("where", ["data", "errors"])
def test_deep_graphql_in_a_2_mib_answer_is_a_butlr_data_error(
    api: HostileApi, call: Driver, where: str, depth: int
) -> None:
    member = f"[{nested(depth)}]" if where == "errors" else nested(depth)
    api.script = answering("{" + PAD + f', "{where}": {member}' + "}")
    _, err, _ = outcome(call, "POST", GRAPHQL, {"query": "{ sites { data { id } } }"}, graphql=True)
    assert isinstance(err, ButlrDataError) and "deeper than 128 levels" in str(err), err


@DRIVERS
@pytest.mark.parametrize("depth", [129, 500, 900])
def test_deep_data_in_a_2_mib_answer_is_malformed_not_returned(
    api: HostileApi, call: Driver, depth: int
) -> None:
    api.script = answering("{" + PAD + f', "data": {nested(depth)}' + "}")
    result, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert result is None and isinstance(err, ButlrDataError) and "deeper than 128" in str(err), err


def test_shallow_data_in_a_2_mib_answer_is_returned(api: HostileApi) -> None:
    api.script = answering("{" + PAD + f', "data": {nested(127)}' + "}")
    result, err, _ = outcome(lambda: ButlrHook(**QUICK).request_json("POST", DATA, json={}))
    assert err is None and "data" in result


@pytest.mark.parametrize("depth", [129, 700])
def test_a_deep_page_info_in_a_large_reporting_answer_is_malformed(api: HostileApi, depth: int) -> None:
    """The reporting envelope is read apart from its rows (large answers): page_info is checked too."""
    rows = ",".join('{"time": "2025-01-01T00:00:00Z", "room_id": "room_1", "value": 1}' for _ in range(2000))
    api.script = answering(f'{{"data": [{rows}], "page_info": {nested(depth)}}}')
    _, err, _ = outcome(lambda: ButlrHook(**QUICK).fetch_reporting_answer({"q": 1}))
    assert isinstance(err, ButlrDataError) and "deeper than 128" in str(err), err


@pytest.mark.parametrize("depth", [700, 900])
def test_the_operator_on_a_deep_2_mib_answer_raises_a_butlr_error(api: HostileApi, depth: int) -> None:
    api.script = answering("{" + PAD + f', "data": {nested(depth)}' + "}")
    operator = ButlrOperator(task_id="deep", endpoint="/api/v3/anything")
    _, err, _ = outcome(lambda: operator.execute({}))
    assert isinstance(err, ButlrError), err


def test_the_trigger_ends_with_one_error_event_on_a_deep_2_mib_answer(api: HostileApi) -> None:
    api.script = answering("{" + PAD + f', "data": {nested(700)}' + "}")
    trigger = ButlrTrigger(
        plan={"requests": [{"endpoint": "/api/v3/occupancy"}], "conditions": []},
        deadline=time.time() + 30,
        poll_interval=0.05,
        max_consecutive_failures=1,
        hook_params={**QUICK, "max_retries": 0},
    )

    events = trigger_events(trigger)
    assert [event["status"] for event in events] == ["error"], events
    assert "deeper than 128" in events[0]["message"]


# --- every walk over an answer: iterative, bounded -----------------------------------------------------

DEEP = 100_000


def deep_dicts(depth: int = DEEP) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


def deep_lists(depth: int = DEEP) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        node.append([])
        node = node[0]
    return root


def _scrub(value: Any) -> Any:
    from airflow_provider_butlr.client.scrub import scrub_json

    return scrub_json(value, ("hs-secret-value",))


def _redact(value: Any) -> Any:
    from airflow_provider_butlr.client.scrub import redact_secret_fields

    return redact_secret_fields(value)


def _rows(value: Any) -> Any:
    from airflow_provider_butlr.polling.answers import iter_rows

    return list(iter_rows({"data": value}))


def _value_at(value: Any) -> Any:
    from airflow_provider_butlr.polling.conditions import ValueAt

    return ValueAt(path=".".join(["a"] * DEEP), op="==", value=1).evaluate([value], 0.0)


def _reporting(value: Any) -> Any:
    from airflow_provider_butlr.reporting.rows import flatten_response

    data = deep_dicts() if isinstance(value, list) else value  # the nested reader walks objects
    return list(flatten_response({"data": data}, measurement="room_occupancy", function="max"))


def _error_text(value: Any) -> Any:
    from airflow_provider_butlr.client.scrub import error_text

    return error_text("[" * DEEP + "]" * DEEP)


WALKS = [_scrub, _redact, _rows, _value_at, _reporting, _error_text]


@pytest.mark.parametrize("shape", [deep_dicts, deep_lists], ids=["objects", "lists"])
@pytest.mark.parametrize("walk", WALKS, ids=[w.__name__.strip("_") for w in WALKS])
def test_no_walk_over_an_answer_recurses(walk: Any, shape: Any) -> None:
    """Each walk answers (a result or a ButlrDataError) for 100,000 levels: none recurses. A walk that
    still recursed would raise RecursionError here (Python's limit is 1,000 frames)."""
    try:
        walk(shape())
    except ButlrDataError as err:
        assert "deeper than 128" in str(err)


def test_the_iterative_walks_keep_what_they_walk() -> None:
    """Order, keys and values survive the iterative rewrite (a shallow answer, compared in full)."""
    from airflow_provider_butlr.client.scrub import redact_secret_fields, remember_secret, scrub_json
    from airflow_provider_butlr.polling.answers import iter_rows
    from airflow_provider_butlr.polling.conditions import ValueAt

    remember_secret("hs-secret-value")
    answer = {
        "data": [
            {"time": "t1", "value": 1, "note": "hs-secret-value"},
            {"group": [{"time": "t2", "value": 2}, {"time": "t3", "value": 3}]},
            {"token": "tok-abcdefgh", "nested": {"password": "pw", "list": [1, ("x", "hs-secret-value")]}},
        ],
        "hs-secret-value": None,
    }
    assert scrub_json(answer)["data"][0] == {"time": "t1", "value": 1, "note": "***"}
    assert list(scrub_json(answer)) == ["data", "***"]
    assert scrub_json(answer)["data"][2]["nested"]["list"] == [1, ["x", "***"]]
    redacted = redact_secret_fields(answer)
    assert redacted["data"][2] == {
        "token": "***",
        "nested": {"password": "***", "list": [1, ("x", "hs-secret-value")]},
    }
    assert [row["time"] for row in iter_rows(answer)] == ["t1", "t2", "t3"]
    verdict = ValueAt(path="data.*.group.*.value", op=">=", value=2).evaluate([answer], 0.0)
    assert verdict.met and verdict.details == {"path": "data.*.group.*.value", "matched": 2, "values": 2}


pytestmark = pytest.mark.airflow_independent
