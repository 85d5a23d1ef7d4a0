"""Declarative conditions and poll plans: pure evaluation, JSON round trips, argument errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.polling.answers import iter_rows
from airflow_provider_butlr.polling.conditions import (
    DataComplete,
    Occupancy,
    RowsComplete,
    ValueAt,
    condition_from_dict,
)
from airflow_provider_butlr.polling.plans import PollPlan, PollRequest
from airflow_provider_butlr.reporting.times import format_instant as rfc3339
from airflow_provider_butlr.reporting.times import parse_instant

pytestmark = pytest.mark.airflow_independent  # pure functions: run once, not per Airflow minor

END = "2025-11-10T00:00:00Z"
START = "2025-11-09T00:00:00Z"
T_END = parse_instant(END)


def _row(asset: str, minute_before_end: int, value: float = 1, key: str = "room_id", **extra: Any) -> dict:
    return {key: asset, "time": rfc3339(T_END - 60 * minute_before_end), "value": value, **extra}


def _flat(*rows: dict) -> dict:
    return {"data": list(rows), "page_info": {"page": 1, "page_item_count": 0}}


def _complete(**kwargs: Any) -> DataComplete:
    base: dict[str, Any] = dict(
        window_start=START, window_end=END, asset_key="room_id", asset_ids=["room_a", "room_b"]
    )
    base.update(kwargs)
    return DataComplete(**base)


# --- rows -------------------------------------------------------------------------------------


def test_iter_rows_reads_flat_and_raw_grouped_shapes_but_not_stats_leaves() -> None:
    flat = _flat(_row("room_a", 5), _row("room_b", 5))
    grouped = {"data": {"room_a": {"2025-11-09T23:55:00Z": [_row("room_a", 5)]}}}
    stats = {"data": {"2025-11-09T23:00:00Z": {"sum": 3, "mean": 1.5, "count": 2}}}
    assert [r["room_id"] for r in iter_rows(flat)] == ["room_a", "room_b"]
    assert [r["room_id"] for r in iter_rows(grouped)] == ["room_a"]
    assert list(iter_rows(stats)) == []


# --- value_at ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "op", "value", "quantifier", "met"),
    [
        ("data.0.value", ">=", 2, "all", True),
        ("data.0.value", ">", 2, "all", False),
        ("data.*.value", "<=", 2, "all", False),
        ("data.*.value", "<=", 2, "any", True),
        ("data.-1.room_id", "==", "room_b", "all", True),
        ("data.9.value", "==", 1, "all", False),  # absent path: never met
        ("data.--1.value", "==", 7, "all", False),  # not an index: absent, not a crash
        ("page_info.page", "==", 1, "all", True),
    ],
)
def test_value_at(path: str, op: str, value: Any, quantifier: str, met: bool) -> None:
    payload = _flat(_row("room_a", 5, value=2), _row("room_b", 5, value=7))
    verdict = ValueAt(path, op, value, quantifier).evaluate([payload], now=0)
    assert verdict.met is met, verdict.message


def test_value_at_reads_the_chosen_response() -> None:
    first, second = _flat(_row("room_a", 1, value=0)), _flat(_row("room_a", 1, value=5))
    assert ValueAt("data.0.value", "==", 5, request=1).evaluate([first, second], 0).met
    assert not ValueAt("data.0.value", "==", 5, request=2).evaluate([first, second], 0).met


# --- rows_complete ----------------------------------------------------------------------------


def test_rows_complete_flags_incomplete_rows_and_null_percentage() -> None:
    good = _flat(_row("room_a", 5, data_incomplete=False, null_percentage=0.1))
    flagged = _flat(_row("room_a", 5, data_incomplete=True, null_percentage=0.0))
    nulls = _flat(_row("room_a", 5, data_incomplete=False, null_percentage=0.4))
    assert RowsComplete().evaluate([good], 0).met
    assert not RowsComplete().evaluate([flagged], 0).met
    assert RowsComplete().evaluate([nulls], 0).met
    assert not RowsComplete(max_null_percentage=0.3).evaluate([nulls], 0).met
    assert not RowsComplete().evaluate([_flat()], 0).met  # no rows: maybe a silently empty answer


# --- data_complete ----------------------------------------------------------------------------


def test_data_complete_gate_holds_until_the_grace_period_has_passed() -> None:
    condition = _complete(grace_seconds=900)
    assert condition.gate(T_END + 899) is not None
    assert "grace" in condition.gate(T_END + 899).message  # type: ignore[union-attr]
    assert condition.gate(T_END + 900) is None


def test_data_complete_needs_every_asset_up_to_the_window_end() -> None:
    now = T_END + 3600
    both = _flat(_row("room_a", 5), _row("room_b", 5))
    lagging = _flat(_row("room_a", 5), _row("room_b", 10))
    missing = _flat(_row("room_a", 5))
    assert _complete().evaluate([both], now).met
    verdict = _complete().evaluate([lagging], now)
    assert not verdict.met and "room_b" in verdict.message
    assert verdict.details["assets_without_final_window"] == ["room_b"]
    assert not _complete().evaluate([missing], now).met


def test_data_complete_rejects_incomplete_windows_and_ignores_rows_outside_the_window() -> None:
    now = T_END + 3600
    flagged = _flat(_row("room_a", 5), _row("room_b", 5), _row("room_b", 20, data_incomplete=True))
    verdict = _complete().evaluate([flagged], now)
    assert not verdict.met
    assert verdict.details["incomplete_windows"] == 1
    assert verdict.details["incomplete_examples"][0]["asset_id"] == "room_b"
    after_end = _flat(_row("room_a", 5), _row("room_b", 5), _row("room_b", -5, data_incomplete=True))
    assert _complete().evaluate([after_end], now).met
    nulls = _flat(_row("room_a", 5, null_percentage=0.5), _row("room_b", 5))
    assert _complete().evaluate([nulls], now).met
    assert not _complete(max_null_percentage=0.3).evaluate([nulls], now).met


def test_data_complete_summary_is_small_json() -> None:
    now = T_END + 3600
    verdict = _complete().evaluate([_flat(_row("room_a", 5), _row("room_b", 5))], now)
    assert verdict.details["assets_checked"] == 2
    assert verdict.details["incomplete_windows"] == 0
    assert verdict.details["window_end"] == END
    json.dumps(verdict.to_dict())


def test_data_complete_reads_only_its_own_requests() -> None:
    """Room rows also carry space_id: a floor condition must not count them as floor data."""
    now = T_END + 3600
    rooms = _flat(_row("room_a", 5, space_id="space_1"))
    floors = _flat()
    floor_check = DataComplete(START, END, "space_id", ["space_1"], requests=[1])
    assert not floor_check.evaluate([rooms, floors], now).met
    assert DataComplete(START, END, "space_id", ["space_1"]).evaluate([rooms, floors], now).met


# --- occupancy --------------------------------------------------------------------------------


def _minutes(asset: str, values: list[float], key: str = "room_id") -> list[dict]:
    return [_row(asset, len(values) - i, value=v, key=key) for i, v in enumerate(values)]


def test_occupancy_is_the_median_and_the_higher_source_wins() -> None:
    presence = _flat(*_minutes("room_a", [0, 0, 9, 0, 0]), *_minutes("room_b", [3, 4, 5, 6, 7]))
    traffic = _flat(*_minutes("room_a", [2, 2, 2, 2, 2]))
    condition = Occupancy("room_id", ["room_a", "room_b"], ">=", 2)
    assert condition.occupancy([presence]) == {"room_a": 0, "room_b": 5}
    assert condition.occupancy([presence, traffic]) == {"room_a": 2, "room_b": 5}
    assert not condition.evaluate([presence], 0).met
    assert condition.evaluate([presence, traffic], 0).met


def test_occupancy_match_any_per_asset_thresholds_and_missing_data() -> None:
    presence = _flat(*_minutes("room_a", [0, 0, 0]), *_minutes("room_b", [8, 8, 8]))
    assert Occupancy("room_id", ["room_a", "room_b"], "<=", 0, match="any").evaluate([presence], 0).met
    assert not Occupancy("room_id", ["room_a", "room_b"], "<=", 0).evaluate([presence], 0).met
    capacity = Occupancy("room_id", ["room_a", "room_b"], ">=", {"room_a": 1, "room_b": 8}, match="any")
    verdict = capacity.evaluate([presence], 0)
    assert verdict.met and verdict.details["passing"] == ["room_b"]
    absent = Occupancy("room_id", ["room_c"], "<=", 100).evaluate([presence], 0)
    assert not absent.met and "room_c" in absent.message


# --- requests and plans -----------------------------------------------------------------------


def test_lookback_request_is_re_timed_at_each_poll() -> None:
    body = {"filter": {"measurements": ["room_occupancy"], "start": "x", "stop": "y"}}
    request = PollRequest("/api/v3/reporting", json=body, lookback_seconds=300)
    sent = request.render(T_END + 75)
    assert sent.json["filter"]["start"] == "2025-11-09T23:56:00Z"
    assert sent.json["filter"]["stop"] == "2025-11-10T00:01:00Z"
    assert body["filter"]["start"] == "x"  # the template is untouched
    assert PollRequest("/api/v3/graphql").render(T_END) == PollRequest("/api/v3/graphql")


def test_plan_round_trips_through_json_and_evaluates_all_conditions() -> None:
    plan = PollPlan(
        [PollRequest("/api/v3/reporting", json={"filter": {"measurements": ["room_occupancy"]}})],
        [_complete(), ValueAt("data.0.value", ">=", 0), Occupancy("room_id", ["room_a"], "<=", 3)],
    ).validate()
    spec = json.loads(json.dumps(plan.to_dict()))
    again = PollPlan.from_dict(spec)
    assert again.to_dict() == plan.to_dict()
    now = T_END + 3600
    good = _flat(_row("room_a", 5, value=1), _row("room_b", 5, value=1))
    assert again.evaluate([good], now).met
    bad = _flat(_row("room_a", 5, value=9), _row("room_b", 5, value=9))
    verdict = again.evaluate([bad], now)
    assert not verdict.met and "occupancy" in verdict.message
    assert again.gate(T_END + 10) is not None


def test_a_plan_without_conditions_is_met_by_any_answer() -> None:
    plan = PollPlan([PollRequest("/api/v3/graphql")])
    assert plan.evaluate([{"data": {}}], 0).met


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "nope"}, r"conditions\[0\]\.type 'nope' is not one of value_at, rows_complete"),
        ({"type": "value_at", "path": "data", "op": "gt", "value": 1}, r"conditions\[0\]\.op 'gt'"),
        ({"type": "value_at", "path": "data", "op": ">", "value": 1, "colour": 1}, "unknown field"),
        ({"type": "value_at", "op": ">", "value": 1}, "path"),
        (
            {"type": "occupancy", "asset_key": "room", "asset_ids": ["r"], "op": ">", "threshold": 1},
            "asset_key",
        ),
        (
            {"type": "occupancy", "asset_key": "room_id", "asset_ids": [], "op": ">", "threshold": 1},
            "asset_ids",
        ),
        (
            {"type": "occupancy", "asset_key": "room_id", "asset_ids": ["r"], "op": ">", "threshold": "x"},
            "threshold",
        ),
        ({"type": "rows_complete", "max_null_percentage": 3}, "max_null_percentage"),
        (
            {
                "type": "data_complete",
                "window_start": END,
                "window_end": START,
                "asset_key": "room_id",
                "asset_ids": ["r"],
            },
            "window_end",
        ),
        (
            {
                "type": "data_complete",
                "window_start": "2025-11-09",
                "window_end": END,
                "asset_key": "room_id",
                "asset_ids": ["r"],
            },
            "no timezone",
        ),
    ],
)
def test_condition_errors_name_the_field(spec: dict, message: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=message):
        condition_from_dict(spec, "conditions[0]")


def test_plan_errors_name_the_request() -> None:
    with pytest.raises(ButlrConfigurationError, match=r"requests\[0\]\.method 'PUT'"):
        PollPlan.from_dict({"requests": [{"endpoint": "/x", "method": "PUT"}]})
    with pytest.raises(ButlrConfigurationError, match="at least one request"):
        PollPlan.from_dict({"requests": []})
    with pytest.raises(
        ButlrConfigurationError, match=r"requests\[0\]\.lookback_seconds needs a reporting body"
    ):
        PollPlan.from_dict({"requests": [{"endpoint": "/x", "lookback_seconds": 60}]})


def test_a_condition_reading_a_request_the_plan_does_not_make_is_a_configuration_error() -> None:
    """Not a wait until the timeout (value_at), nor a silent success (rows_complete with min_rows 0)."""
    one = [PollRequest("/api/v3/graphql")]
    assert RowsComplete(min_rows=0, requests=[1]).evaluate([{"data": []}], 0).met  # what it would do
    with pytest.raises(ButlrConfigurationError, match=r"conditions\[0\]\.request 1 .* 1 request"):
        PollPlan(one, [ValueAt("data.0.id", "==", 1, request=1)]).validate()
    with pytest.raises(ButlrConfigurationError, match=r"conditions\[1\]\.requests .*\b1\b.* 1 request"):
        PollPlan(one, [ValueAt("data", "!=", None), RowsComplete(min_rows=0, requests=[0, 1])]).validate()
    with pytest.raises(ButlrConfigurationError, match=r"conditions\[0\]\.requests"):
        PollPlan.from_dict(
            {
                "requests": [{"endpoint": "/api/v3/graphql"}],
                "conditions": [
                    {
                        "type": "occupancy",
                        "asset_key": "room_id",
                        "asset_ids": ["r"],
                        "op": ">",
                        "threshold": 1,
                        "requests": [2],
                    }
                ],
            }
        )
    PollPlan(one, [ValueAt("data.0.id", "==", 1, request=0), RowsComplete(requests=[0])]).validate()
