"""The typed reader of flat reporting rows gives exactly the generic reader's rows, or steps aside."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_butlr.reporting import answer as reporting_answer
from airflow_provider_butlr.reporting.export import run_export
from airflow_provider_butlr.reporting.export_options import ExportOptions
from airflow_provider_butlr.reporting.planning import ReportingQuery
from airflow_provider_butlr.reporting.rows import flatten_response
from airflow_provider_butlr.reporting.times import local_day_bounds
from airflow_provider_butlr.reporting.typed_rows import decode_flat_rows
from tests.support.paths import FIXTURES

REAL_ANSWERS = FIXTURES / "butlr" / "reporting"  # sanitized real answers
BERLIN = ZoneInfo("Europe/Berlin")


def generic(data: Any, measurement: str, function: str, zone: ZoneInfo | None) -> list[dict[str, Any]]:
    return list(flatten_response({"data": data}, measurement=measurement, function=function, timezone=zone))


def api_row(**fields: Any) -> dict[str, Any]:
    row = {
        "field": "occupancy",
        "measurement": "room_occupancy",
        "time": "2025-10-26T00:45:00Z",
        "value": 3.0,
        "room_id": "room_1",
        "room_name": "Focus 1",
        "space_id": "space_1",
        "space_name": "Floor 1",
        "building_id": "building_1",
        "preprocessed": False,
        "timezone_offset": "+2h",
    }
    row.update(fields)
    return row


@pytest.mark.parametrize(
    ("measurement", "function", "zone"),
    [("room_occupancy", "mean", BERLIN), ("room_occupancy", "max", None), ("traffic", "sum", BERLIN)],
)
def test_typical_rows_read_the_same_both_ways(measurement: str, function: str, zone: ZoneInfo | None) -> None:
    data = [
        api_row(),
        api_row(time="2025-10-26T01:45:00Z", value=2, data_incomplete=True, null_percentage=12.5),
        api_row(
            time="2025-10-26T02:15:00", value=None, sensor_id="sensor_1", mac_address="AA-BB-CC-DD-00-01"
        ),
        {"time": "2025-10-26T03:00:00Z"},  # every other column from its default
    ]
    typed = decode_flat_rows(json.dumps(data).encode(), measurement, function, zone)
    assert typed == generic(data, measurement, function, zone)
    assert typed is not None and [list(row) for row in typed] == [
        list(row) for row in generic(data, measurement, function, zone)
    ]


def test_real_answers_read_the_same_both_ways() -> None:
    fixtures = sorted(REAL_ANSWERS.glob("*.json"))
    assert fixtures, f"no reporting fixtures at {FIXTURES}"
    read = 0
    for path in fixtures:
        document = json.loads(path.read_text())
        payload = document.get("response", document)
        data = payload.get("data")
        if not isinstance(data, list) or not data:
            continue
        measurement = "traffic" if "traffic" in path.name else "room_occupancy"
        typed = decode_flat_rows(json.dumps(data).encode(), measurement, "sum", BERLIN)
        assert typed is not None, path.name
        assert typed == generic(data, measurement, "sum", BERLIN), path.name
        read += 1
    assert read


@pytest.mark.parametrize(
    "data",
    [
        [api_row(room_name=None)],  # text that is null: "" in the generic reader
        [api_row(value="3")],  # a number as text: 3.0 there
        [api_row(data_incomplete=1)],  # a flag as a number: True there
        [api_row(floor_id="space_2")],  # both space_id and floor_id: the later key wins there
        [api_row(**{"~butlr-provider~local_time": "x"})],  # never a key of the provider's own columns
        {"room_1": {"2025-10-26T00:45:00Z": {"mean": 1.0}}},  # nested (grouped) data
        "not rows",
    ],
    ids=[
        "null-text",
        "number-as-text",
        "flag-as-number",
        "floor-id-twice",
        "own-column-key",
        "nested",
        "text",
    ],
)
def test_anything_unusual_is_left_to_the_generic_reader(data: Any) -> None:
    assert decode_flat_rows(json.dumps(data).encode(), "room_occupancy", "mean", BERLIN) is None


def _export(hook: Any, measurement: str, kind: str, ids: list[str], function: str) -> list[dict[str, Any]]:
    start, stop = local_day_bounds("2025-10-26", "Europe/Berlin")  # a 25 h day
    query = ReportingQuery.build(
        measurement,
        assets={kind: ids},
        start=start,
        stop=stop,
        every="15m",
        function=function,
        timezone="Europe/Berlin",
    )
    return list(run_export(hook, query, ExportOptions()))


def test_an_export_through_the_emulator_is_the_same_with_and_without_the_typed_reader(
    butlr_conn: Any, fast_hook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = butlr_conn
    rooms = list(emu.org.rooms_by_id)[:10]
    floors = list(emu.org.floors_by_id)[:3]
    typed_answers: list[int] = []
    decode = decode_flat_rows

    def counting(raw: Any, *args: Any) -> Any:
        rows = decode(raw, *args)
        typed_answers.append(rows is not None)
        return rows

    monkeypatch.setattr("airflow_provider_butlr.reporting.export.decode_flat_rows", counting)
    fast = _export(fast_hook(), "room_occupancy", "rooms", rooms, "mean")
    fast += _export(fast_hook(), "traffic", "floors", floors, "sum")
    assert typed_answers and all(typed_answers)  # large flat answers: every one read typed
    # every answer decoded at once (no raw "data"): the generic reader reads every row
    monkeypatch.setattr(reporting_answer, "SMALL_ANSWER", 1 << 62)
    plain = _export(fast_hook(), "room_occupancy", "rooms", rooms, "mean")
    plain += _export(fast_hook(), "traffic", "floors", floors, "sum")
    assert len(fast) > 1000 and fast == plain
