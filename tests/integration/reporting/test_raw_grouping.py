"""The provider's readers (``reporting.flatten_response``, ``conditions.iter_rows``) on every answer shape.

One query is asked of the emulator over HTTP in each shape: A (no ``group_by``), B (``order``), C
(``order`` + ``raw``) and D (``raw`` without ``order``, nested by asset id then time, leaves = rows, as
Butlr's own client reads it). Every shape must give the same rows as the flat answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from airflow_provider_butlr.polling.answers import iter_rows
from airflow_provider_butlr.reporting.rows import flatten_response
from airflow_provider_butlr.testing import ButlrEmulator
from airflow_provider_butlr.testing.timeseries.series import series_assets

UTC = UTC
NOW = datetime(2025, 11, 5, 15, 24, 45, tzinfo=UTC)
START, STOP = datetime(2025, 11, 5, 12, tzinfo=UTC), datetime(2025, 11, 5, 14, tzinfo=UTC)
SHAPES: dict[str, dict[str, Any] | None] = {
    "A": None,
    "B": {"order": ["asset", "time"]},
    "C": {"order": ["asset", "time"], "raw": True},
    "D": {"raw": True},
}
# (reporting measurement, id filter key, row column of the asset id, group key of the asset)
CASES = {
    "room_occupancy": ("rooms", "room_id", "room_id"),
    "traffic": ("sensors", "sensor_id", "sensor_id"),
}


@pytest.fixture(scope="module")
def emu() -> Iterator[ButlrEmulator]:
    with ButlrEmulator(port=0) as emulator:
        emulator.clock.freeze(NOW)
        yield emulator


@pytest.fixture(scope="module")
def token(emu: ButlrEmulator) -> str:
    body = {
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "audience": emu.audience,
        "grant_type": "client_credentials",
    }
    return str(requests.post(emu.url + "/api/v2/clients/login", json=body, timeout=10).json()["access_token"])


def ask(emu: ButlrEmulator, token: str, measurement: str, shape: str) -> dict[str, Any]:
    id_key, _, group_key = CASES[measurement]
    ids = series_assets(emu.org, measurement, emu.config.seed)[:3]
    body: dict[str, Any] = {
        "filter": {
            "measurements": [measurement],
            id_key: {"eq": ids},
            "start": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "stop": STOP.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "window": {"every": "15m", "function": "max"},
    }
    group_by = SHAPES[shape]
    if group_by is not None:
        body["group_by"] = {**group_by}
        if "order" in group_by:
            body["group_by"]["order"] = [group_key if k == "asset" else k for k in group_by["order"]]
    response = requests.post(
        emu.url + "/api/v3/reporting", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _key(row: dict[str, Any], asset_column: str) -> tuple[Any, ...]:
    return (row[asset_column], row["time"], row.get("field", ""), row["value"])


@pytest.mark.parametrize("measurement", sorted(CASES))
@pytest.mark.parametrize("shape", ["C", "D"])
def test_nested_row_shapes_flatten_to_the_flat_answers_rows(
    emu: ButlrEmulator, token: str, measurement: str, shape: str
) -> None:
    asset_column = CASES[measurement][1]
    flat = list(flatten_response(ask(emu, token, measurement, "A"), measurement=measurement, function="max"))
    nested_payload = ask(emu, token, measurement, shape)
    assert isinstance(nested_payload["data"], dict) and nested_payload["data"]
    nested = list(flatten_response(nested_payload, measurement=measurement, function="max"))
    assert flat and any(row["value"] for row in flat)
    assert sorted(_key(r, asset_column) for r in nested) == sorted(_key(r, asset_column) for r in flat)
    assert {r["asset_id"] for r in nested} == {r[asset_column] for r in flat}


def test_shape_d_is_keyed_by_asset_then_time_with_row_lists(emu: ButlrEmulator, token: str) -> None:
    data = ask(emu, token, "traffic", "D")["data"]
    sensors = series_assets(emu.org, "traffic", emu.config.seed)[:3]
    assert set(data) <= set(sensors) and data
    for sensor, by_time in data.items():
        for time_key, leaf in by_time.items():
            assert isinstance(leaf, list) and {row["field"] for row in leaf} <= {"in", "out"}
            assert all(row["sensor_id"] == sensor and row["time"] == time_key for row in leaf)


def test_shape_b_stats_leaves_flatten_to_the_window_values(emu: ButlrEmulator, token: str) -> None:
    flat = list(
        flatten_response(ask(emu, token, "room_occupancy", "A"), measurement="room_occupancy", function="max")
    )
    stats = flatten_response(
        ask(emu, token, "room_occupancy", "B"),
        measurement="room_occupancy",
        function="max",
        group_by_order=["room_id", "time"],
    )
    # B leaves carry no row ``field``: compare asset, time and value.
    cells = sorted((r["room_id"], r["time"], r["value"]) for r in stats)
    assert cells == sorted((r["room_id"], r["time"], r["value"]) for r in flat)


@pytest.mark.parametrize("shape", ["A", "C", "D"])
def test_condition_rows_are_the_same_in_every_row_shape(emu: ButlrEmulator, token: str, shape: str) -> None:
    flat_rows = list(iter_rows(ask(emu, token, "room_occupancy", "A")))
    rows = list(iter_rows(ask(emu, token, "room_occupancy", shape)))
    assert flat_rows
    assert sorted(_key(r, "room_id") for r in rows) == sorted(_key(r, "room_id") for r in flat_rows)


def test_condition_rows_skip_shape_b(emu: ButlrEmulator, token: str) -> None:
    assert list(iter_rows(ask(emu, token, "room_occupancy", "B"))) == []


def test_the_newest_minute_with_data_follows_the_data_lag(emu: ButlrEmulator, token: str) -> None:
    """What a data-complete check reads in shape D: the latest timestamp per asset."""
    room = series_assets(emu.org, "room_occupancy", emu.config.seed)[0]
    body = {
        "filter": {"measurements": ["room_occupancy"], "rooms": {"eq": [room]},
                   "start": (NOW - timedelta(minutes=10)).isoformat(), "stop": NOW.isoformat()},
        "window": {"every": "1m", "function": "max"},
        "group_by": {"raw": True},
    }  # fmt: skip
    answer = requests.post(
        emu.url + "/api/v3/reporting", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    newest = max(row["time"] for row in iter_rows(answer))
    assert newest == "2025-11-05T15:21:00Z"  # now 15:24:45, default lag 2 minutes: minutes before 15:22


# The exchange and its drivers against loopback servers (like the fault matrix): run once, not per
# Airflow minor (the version matrix leaves airflow_independent tests to the main test step).
pytestmark = pytest.mark.airflow_independent
