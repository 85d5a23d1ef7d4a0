"""The silent-empty processing budget: proportional to the work (ids x windows), plus the long-range id cap.

Evidence (docs/emulator.md, "The processing budget"): Butlr's own client got 127 assets over a 5-minute,
1-minute-window request answered (its recording ``current-occupancy-rooms.json``), so there is no fixed
30-id cap for short ranges; the support article's long-range guidance (<= 10 ids for 24 h and more) and the
silent-empty answer for oversized queries still hold. The provider's planner (<= 30 ids below 24 h, <= 10
from 24 h, <= 50,000 estimated rows per request) must keep fitting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_butlr.testing import ButlrEmulator
from airflow_provider_butlr.testing.timeseries.series import series_assets
from tests.integration.emulator.conftest import REPORTING, Client

NOW = datetime(2025, 11, 5, 15, 24, 45, tzinfo=UTC)
SILENT_EMPTY = {
    "data": {},
    "page_info": {"page": 1, "page_item_count": 0, "total_item_count": 0, "total_pages": 1},
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def query(
    ids: list[str], start: datetime, stop: datetime, every: str, *, raw: bool = False, key: str = "rooms"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "filter": {
            "measurements": ["room_occupancy"],
            key: {"eq": ids},
            "start": iso(start),
            "stop": iso(stop),
            "value": {"gte": 0},
        },
        "window": {"every": every, "function": "median", "timezone": "UTC"},
    }
    if raw:
        body["group_by"] = {"raw": True}
    return body


@pytest.fixture
def frozen(emu: ButlrEmulator) -> ButlrEmulator:
    emu.clock.freeze(NOW)
    return emu


def answer(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(REPORTING, body, token=client.token)
    assert response.status_code == 200, response.text
    return dict(response.json())


def all_rooms(emu: ButlrEmulator) -> list[str]:
    return list(emu.org.rooms_by_id)


def test_every_room_of_the_org_over_five_minutes_answers_as_butlrs_recording_shows(
    client: Client, frozen: ButlrEmulator
) -> None:
    rooms = all_rooms(frozen)
    assert len(rooms) == 96  # the client's available_rooms sends all of them in one request
    body = query(rooms, NOW - timedelta(minutes=5), NOW, "60s", raw=True)
    data = answer(client, body)["data"]
    assert sorted(data) == sorted(series_assets(frozen.org, "room_occupancy", frozen.config.seed))
    # 127 ids (the recording's count) answer too; ids without data simply have no rows.
    padded = [*rooms, *(f"room_unknown{i}" for i in range(31))]
    assert sorted(
        answer(client, query(padded, NOW - timedelta(minutes=5), NOW, "60s", raw=True))["data"]
    ) == sorted(data)


def test_the_budget_is_ids_times_windows_not_a_fixed_id_count(client: Client, frozen: ButlrEmulator) -> None:
    rooms = all_rooms(frozen)
    stop = NOW - timedelta(hours=1)
    # 96 ids x 600 one-minute windows = 57,600 fits the default 60,000 ...
    assert answer(client, query(rooms, stop - timedelta(hours=10), stop, "1m"))["data"]
    # ... 96 x 720 = 69,120 does not; the same 12 h in 5-minute windows (96 x 144) does again.
    assert answer(client, query(rooms, stop - timedelta(hours=12), stop, "1m")) == SILENT_EMPTY
    assert answer(client, query(rooms, stop - timedelta(hours=12), stop, "5m"))["data"]
    frozen.config.reporting_max_id_windows = 96 * 144 - 1
    assert answer(client, query(rooms, stop - timedelta(hours=12), stop, "5m")) == SILENT_EMPTY
    frozen.config.reporting_max_id_windows = None
    assert answer(client, query(rooms, stop - timedelta(hours=12), stop, "1m"))["data"]


@pytest.mark.parametrize("every", ["1m", "15m", "1h"])
def test_a_month_over_a_hundred_ids_is_still_the_silent_empty_answer(
    client: Client, frozen: ButlrEmulator, every: str
) -> None:
    ids = [*all_rooms(frozen), "room_x1", "room_x2", "room_x3", "room_x4"]
    stop = NOW.replace(day=1, hour=0, minute=0, second=0)
    body = query(ids, stop - timedelta(days=30), stop, every)
    assert answer(client, body) == SILENT_EMPTY  # the long-range cap: at most 10 ids from 24 h on
    frozen.config.reporting_max_ids_long = 1000
    assert answer(client, body) == SILENT_EMPTY  # without that cap, the work alone (>= 100 x 720) is over
    if every == "1h":  # with neither, the emulator answers (so the checks above can fail)
        frozen.config.reporting_max_id_windows = None
        assert answer(client, body)["data"]


def test_the_long_range_cap_and_the_optional_knobs(client: Client, frozen: ButlrEmulator) -> None:
    rooms = series_assets(frozen.org, "room_occupancy", frozen.config.seed)
    day_end = NOW.replace(hour=5, minute=0, second=0)
    day = (day_end - timedelta(days=1), day_end)
    assert answer(client, query(rooms[:10], *day, "1h"))["data"]
    assert answer(client, query(rooms[:11], *day, "1h")) == SILENT_EMPTY
    assert answer(client, query(rooms[:30], day[0], day[1] - timedelta(minutes=1), "1h"))["data"]  # 23:59
    frozen.config.reporting_max_ids = 30  # the former fixed cap, for clients that want to test against it
    assert answer(client, query(rooms[:31], NOW - timedelta(minutes=10), NOW, "1m")) == SILENT_EMPTY
    assert answer(client, query(rooms[:30], NOW - timedelta(minutes=10), NOW, "1m"))["data"]


@pytest.mark.parametrize(
    ("ids", "span", "every"),
    [
        (10, timedelta(days=30), "15m"),  # the benchmark's export: 10 ids x 2,880 windows per request
        (10, timedelta(days=30), "1h"),
        (10, timedelta(minutes=5000), "1m"),  # the planner's row budget: 10 ids x 5,000 windows = 50,000
        (30, timedelta(hours=23), "1m"),  # the planner's short-range batch: 30 ids x 1,380 windows
        (10, timedelta(days=1), "1m"),
    ],
)
def test_the_provider_planners_largest_requests_still_answer(
    client: Client, frozen: ButlrEmulator, ids: int, span: timedelta, every: str
) -> None:
    rooms = series_assets(frozen.org, "room_occupancy", frozen.config.seed)[:ids]
    stop = NOW - timedelta(days=1)
    rows = answer(client, query(rooms, stop - span, stop, every))["data"]
    assert isinstance(rows, list) and {row["room_id"] for row in rows} == set(rooms)
