"""``data_incomplete`` / ``null_percentage`` agree with the values and Butlr's ~5-minute revision window.

``null_percentage`` is the share of a window's minutes without data (the data lag, 2 minutes by default);
``data_incomplete`` is true when a minute is missing or still revised (the last
``reporting_incomplete_minutes``, default 5). A row holding a value from all its minutes never says
``null_percentage: 1.0``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_butlr.testing import ButlrEmulator
from airflow_provider_butlr.testing.timeseries.series import minute_values, series_assets
from tests.integration.emulator.conftest import REPORTING, Client

NOW = datetime(2025, 11, 5, 15, 24, 45, tzinfo=UTC)
NOW_MINUTE = NOW.replace(second=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def frozen(emu: ButlrEmulator) -> ButlrEmulator:
    emu.clock.freeze(NOW)
    return emu


def rows(
    client: Client, room: str, start: datetime, every: str, *, create_empty: bool = False
) -> list[dict[str, Any]]:
    body = {
        "filter": {
            "measurements": ["room_occupancy"],
            "rooms": {"eq": [room]},
            "start": iso(start),
            "stop": iso(NOW),
            "value": {"gte": 0},
        },
        "window": {"every": every, "function": "sum", "timezone": "UTC", "create_empty": create_empty},
    }
    response = client.post(REPORTING, body, token=client.token)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def room(emu: ButlrEmulator) -> str:
    return series_assets(emu.org, "room_occupancy", emu.config.seed)[0]


def test_one_minute_rows_are_final_then_revised_then_missing(client: Client, frozen: ButlrEmulator) -> None:
    asset = room(frozen)
    start = NOW_MINUTE - timedelta(minutes=10)
    truth = dict(minute_values(frozen.org, "room_occupancy", asset, start, NOW_MINUTE, frozen.config.seed))
    got = {row["time"]: row for row in rows(client, asset, start, "1m")}
    minutes = [start + timedelta(minutes=i) for i in range(10)]
    assert list(got) == [iso(m) for m in minutes[:8]]  # the last 2 minutes have no data yet (the lag)
    for minute in minutes[:8]:
        row = got[iso(minute)]
        revising = minute >= NOW_MINUTE - timedelta(minutes=5)
        assert (row["value"], row["data_incomplete"], row["null_percentage"]) == (truth[minute], revising, 0)
    empty = {row["time"]: row for row in rows(client, asset, start, "1m", create_empty=True)}
    for minute in minutes[8:]:  # invented by create_empty: no data, and the flags say so
        assert (empty[iso(minute)]["value"], empty[iso(minute)]["data_incomplete"]) == (0, True)
        assert empty[iso(minute)]["null_percentage"] == 1


def test_a_window_partly_without_data_says_which_share_is_missing(
    client: Client, frozen: ButlrEmulator
) -> None:
    asset = room(frozen)
    start = NOW_MINUTE - timedelta(minutes=24)  # 15:00 .. 15:24:45 in 5-minute windows
    truth = dict(minute_values(frozen.org, "room_occupancy", asset, start, NOW_MINUTE, frozen.config.seed))
    got = rows(client, asset, start, "5m")
    last = got[-1]
    # Minutes 15:20 .. 15:24; data ends at 15:22 (now 15:24 minus the 2-minute lag): 3 of 5 are missing.
    assert last["time"] == "2025-11-05T15:20:00Z"
    present = [truth[NOW_MINUTE - timedelta(minutes=k)] for k in (4, 3)]
    assert (
        last["value"] == sum(present) and last["null_percentage"] == 0.6 and last["data_incomplete"] is True
    )
    assert [r["data_incomplete"] for r in got[:-2]] == [False] * (len(got) - 2)
    # 15:15 .. 15:19 is complete but 15:19 is inside the 5-minute revision window (from 15:19 on).
    assert got[-2]["data_incomplete"] is True and got[-2]["null_percentage"] == 0  # revised, not missing
    assert all(r["null_percentage"] < 1 for r in got)  # a row with a value from data is never "all null"


def test_the_revision_window_is_configurable(client: Client, frozen: ButlrEmulator) -> None:
    asset = room(frozen)
    start = NOW_MINUTE - timedelta(minutes=20)
    frozen.config.reporting_incomplete_minutes = 15
    flagged = [r["time"] for r in rows(client, asset, start, "1m") if r["data_incomplete"]]
    assert flagged[0] == iso(NOW_MINUTE - timedelta(minutes=15)) and len(flagged) == 13
    frozen.config.reporting_incomplete_minutes = 0
    assert not any(
        r["data_incomplete"] for r in rows(client, asset, start, "1m")
    )  # only missing minutes flag
