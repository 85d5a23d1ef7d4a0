"""Issue 22, items 4 and 7: numbers from the API for typed columns are range-checked, and non-finite
values are spelled one way in every output.

A count (an int64 column) beyond int64, or a number beyond float64, fails the export with a
ButlrDataError naming the row (asset and time) and the field, whatever the format (CSV, JSON Lines,
Parquet, XCom rows), and no file is left behind. ``NaN``, ``Infinity`` and numbers too large for a
float are "no value": empty in CSV, null in JSON Lines and Parquet, None in XCom.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrDataError
from airflow_provider_butlr.operators.butlr import ButlrReportingOperator
from tests.support.hostile import HostileApi, Request, hostile_api

ROOM = "room_2joyX7ewAWbxvkgiOfNtRF31Ya0"
TIME = "2025-01-01T00:00:00Z"
FORMATS = ["csv", "jsonl", "parquet", "xcom"]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    yield from hostile_api(monkeypatch)


def answering(value: str, null_percentage: str = "0") -> Any:
    row = f'{{"time": "{TIME}", "room_id": "{ROOM}", "value": {value}, "null_percentage": {null_percentage}}}'
    return lambda request: request.reply(200, f'{{"data": [{row}]}}')


def export(tmp_path: Path, fmt: str, function: str = "max") -> tuple[Any, Path | None]:
    path = None if fmt == "xcom" else tmp_path / f"out.{fmt}"
    operator = ButlrReportingOperator(
        task_id="export",
        measurements=["room_occupancy"],
        rooms=[ROOM],
        start=TIME,
        stop="2025-01-01T01:00:00Z",
        timezone="UTC",
        window_every="1h",
        window_function=function,
        output_path=str(path) if path else None,
    )
    return operator.execute({}), path


def written(fmt: str, result: Any, path: Path | None) -> list[dict[str, Any]]:
    """The exported rows as each format hands them to a reader (strings in CSV)."""
    if fmt == "xcom":
        return list(result)
    assert path is not None
    if fmt == "csv":
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    import pyarrow.parquet as pq

    return list(pq.read_table(path).to_pylist())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("value", "function", "field"),
    [
        ("1e19", "max", "value"),  # a count past int64 (the example)
        ("-1e19", "max", "value"),
        ("9223372036854775808", "max", "value"),  # int64's largest plus one
        ("1" + "0" * 400, "max", "value"),
        ("1" + "0" * 400, "mean", "value"),  # past float64 in a float column
    ],
    ids=["1e19", "-1e19", "2**63", "10**400 count", "10**400 mean"],
)
def test_a_number_that_does_not_fit_its_column_fails_naming_the_row_and_field(
    api: HostileApi, tmp_path: Path, fmt: str, value: str, function: str, field: str
) -> None:
    api.script = answering(value)
    with pytest.raises(ButlrDataError) as err:
        export(tmp_path, fmt, function)
    message = str(err.value)
    assert ROOM in message and TIME in message and f"{field} " in message, message
    assert not list(tmp_path.iterdir()), "no file, not even a temporary one, stays behind"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_null_percentage_past_float64_fails_naming_the_field(
    api: HostileApi, tmp_path: Path, fmt: str
) -> None:
    api.script = answering("3", null_percentage="1" + "0" * 400)
    with pytest.raises(ButlrDataError, match=r"null_percentage 1000") as err:
        export(tmp_path, fmt)
    assert ROOM in str(err.value)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", ['"Infinity"', '"-Infinity"', '"NaN"', '"1e999"', '"inf"'])
@pytest.mark.parametrize("function", ["max", "mean"])
def test_non_finite_values_are_spelled_one_way_in_every_format(
    api: HostileApi, tmp_path: Path, fmt: str, value: str, function: str
) -> None:
    api.script = answering(value, null_percentage=value)
    result, path = export(tmp_path, fmt, function)
    rows = written(fmt, result, path)
    assert len(rows) == 1
    empty = "" if fmt == "csv" else None  # CSV has one spelling of "no value": an empty cell
    assert rows[0]["value"] == empty and rows[0]["null_percentage"] == empty, rows[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_largest_count_still_fits(api: HostileApi, tmp_path: Path, fmt: str) -> None:
    api.script = answering("9223372036854775807")
    result, path = export(tmp_path, fmt)
    assert str(written(fmt, result, path)[0]["value"]) == "9223372036854775807"


# --- numbers that are read, not written: device health and occupancy -----------------------------------

HUGE = ["1" + "0" * 400, "1e19", "-1e19", '"Infinity"']


@pytest.mark.parametrize("heartbeat", HUGE)
def test_device_health_reads_an_absurd_heartbeat_as_no_heartbeat(api: HostileApi, heartbeat: str) -> None:
    from airflow_provider_butlr.operators.butlr import ButlrDeviceHealthOperator

    sensor = f'{{"id": "sensor_1", "mac_address": "aa-bb-cc-dd-ee-ff", "is_online": true, "last_heartbeat": {heartbeat}}}'
    hive = f'{{"id": "hive_1", "serialNumber": "s1", "isOnline": true, "lastHeartbeat": {heartbeat}}}'

    def script(request: Request) -> None:
        kind = "sensors" if b"ButlrSensors" in request.body else "hives"
        request.reply(200, f'{{"data": {{"{kind}": {{"data": [{sensor if kind == "sensors" else hive}]}}}}}}')

    api.script = script
    report = ButlrDeviceHealthOperator(task_id="health").execute({})
    assert report["sensors"]["total"] == 1, report


@pytest.mark.parametrize("value", HUGE[:3])
def test_an_occupancy_condition_reads_an_absurd_value_as_no_value(value: str) -> None:
    from airflow_provider_butlr.common.jsondecode import decode_json
    from airflow_provider_butlr.polling.conditions import Occupancy

    answer = decode_json(f'{{"data": [{{"time": "{TIME}", "room_id": "{ROOM}", "value": {value}}}]}}')
    condition = Occupancy(asset_key="room_id", asset_ids=[ROOM], op="<=", threshold=0)
    verdict = condition.evaluate([answer], 0.0)
    if "e" not in value:  # an integer past float64 is no occupancy (float() of it would raise)
        assert verdict.met is False and verdict.details["without_data"] == [ROOM], verdict


pytestmark = pytest.mark.airflow_independent
