"""Requests of Butlr's official client (butlr-mcp ``a6ff7d4``), sent the way that client sends them.

butlr-api.md §11/§12 describe them: GraphQL floor/zone detail queries selecting ``roomID`` /
``floorID``; "current occupancy" reporting over "now minus 5 minutes" with ``group_by {raw: true}``,
60 s median windows, ``value {gte: 0}`` (and ``calibrated: "true"`` for traffic), for rooms, zones
(``traffic_zone_occupancy``) and every room of the org at once (``available_rooms``);
``get_asset_details`` with devices; an unknown id in ``fetch_entity_details``. Answers are checked
against the emulator's ground truth (``timeseries.series.minute_values``). docs/emulator.md has the
table of every client tool.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_butlr.testing import ButlrEmulator
from airflow_provider_butlr.testing.timeseries.series import minute_values, series_assets
from tests.integration.emulator.conftest import REPORTING, Client

UTC = UTC
# A Wednesday afternoon in UTC: offices in every seeded timezone have people in them around now.
NOW = datetime(2025, 11, 5, 15, 24, 45, tzinfo=UTC)

FLOOR_DETAIL = """
query FloorDetail($id: ID!) {
  floor(id: $id) { __typename id name rooms { __typename id name } zones { __typename id name roomID } }
}
"""
ZONE_DETAIL = """
query ZoneDetail($id: ID!) {
  zone(id: $id) { __typename id name floorID roomID floor_id room_id }
}
"""


def _js_iso(moment: datetime) -> str:
    """``new Date().toISOString()``: milliseconds and ``Z``, as the official client formats times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def current_occupancy_body(measurement: str, id_key: str, ids: list[str], traffic: bool) -> dict[str, Any]:
    """The body of the client's "current occupancy" helper (butlr-api.md §11)."""
    flt: dict[str, Any] = {
        "measurements": [measurement],
        id_key: {"eq": ids},
        "start": _js_iso(NOW - timedelta(minutes=5)),
        "stop": _js_iso(NOW),
        "value": {"gte": 0},
    }
    if traffic:
        flt["calibrated"] = "true"
    return {
        "filter": flt,
        "window": {"every": "60s", "function": "median", "timezone": "UTC"},
        "group_by": {"raw": True},
        "options": {"format": "json", "timestamp": "RFC3339"},
    }


@pytest.fixture
def frozen(emu: ButlrEmulator) -> ButlrEmulator:
    emu.clock.freeze(NOW)
    return emu


def _zone_without_room(emu: ButlrEmulator) -> Any:
    return next(z for z in emu.org.zones_by_id.values() if z.room_id is None)


def test_zone_camelcase_ids_answer_for_floor_and_zone_details_even_without_a_room(
    client: Client, emu: ButlrEmulator
) -> None:
    roomless = _zone_without_room(emu)
    roomed = next(z for z in emu.org.zones_by_id.values() if z.room_id is not None)
    floor = client.data(FLOOR_DETAIL, {"id": roomless.floor_id})["floor"]
    by_id = {z["id"]: z for z in floor["zones"]}
    assert by_id[roomless.id] == {
        "__typename": "Zone",
        "id": roomless.id,
        "name": roomless.name,
        "roomID": None,
    }
    for zone in (roomless, roomed):
        answer = client.data(ZONE_DETAIL, {"id": zone.id})["zone"]
        assert answer["floorID"] == answer["floor_id"] == zone.floor_id
        assert answer["roomID"] == answer["room_id"] == zone.room_id


def _expected_minutes(emu: ButlrEmulator) -> list[datetime]:
    """Minutes with data in [now - 5 min, now): from the first whole minute up to the data lag."""
    first = (NOW - timedelta(minutes=5)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    data_end = NOW.replace(second=0, microsecond=0) - timedelta(minutes=emu.config.data_lag_minutes)
    return [first + timedelta(minutes=i) for i in range(int((data_end - first).total_seconds() // 60))]


@pytest.mark.parametrize(
    ("measurement", "traffic"), [("room_occupancy", False), ("traffic_room_occupancy", True)]
)
def test_current_occupancy_answers_nested_by_asset_then_time_with_ground_truth_rows(
    client: Client, frozen: ButlrEmulator, measurement: str, traffic: bool
) -> None:
    emu = frozen
    rooms = series_assets(emu.org, measurement, emu.config.seed)[:10]
    response = client.post(
        REPORTING, current_occupancy_body(measurement, "rooms", rooms, traffic), token=client.token
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    minutes = _expected_minutes(emu)
    assert len(minutes) >= 2  # the default 2-minute lag leaves data in "now minus 5 minutes"
    assert isinstance(data, dict) and sorted(data) == sorted(rooms)
    nonzero = 0
    for room in rooms:
        truth = dict(
            minute_values(
                emu.org, measurement, room, minutes[0], minutes[-1] + timedelta(minutes=1), emu.config.seed
            )
        )
        by_time = data[room]
        assert list(by_time) == [m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in minutes]
        for minute in minutes:
            leaf = by_time[minute.strftime("%Y-%m-%dT%H:%M:%SZ")]
            assert isinstance(leaf, list) and len(leaf) == 1
            row = leaf[0]
            assert row["room_id"] == room and row["time"] == minute.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert type(row["value"]) is int and row["value"] == truth[minute]
            assert row["data_incomplete"] is True and 0 <= row["null_percentage"] <= 1
            nonzero += row["value"] > 0
    assert nonzero > 0  # the check is not satisfied by an all-zero answer


def test_data_lag_is_configurable_and_zero_lag_reaches_the_last_whole_minute(
    client: Client, frozen: ButlrEmulator
) -> None:
    rooms = series_assets(frozen.org, "room_occupancy", frozen.config.seed)[:3]
    body = current_occupancy_body("room_occupancy", "rooms", rooms, False)
    frozen.config.data_lag_minutes = 0
    latest = max(client.post(REPORTING, body, token=client.token).json()["data"][rooms[0]])
    frozen.config.data_lag_minutes = 3
    lagged = client.post(REPORTING, body, token=client.token).json()["data"][rooms[0]]
    assert latest == "2025-11-05T15:23:00Z"  # the minute that ended before now
    assert list(lagged) == ["2025-11-05T15:20:00Z"]


def test_counts_are_integers_and_only_fractional_means_or_medians_are_floats(
    client: Client, frozen: ButlrEmulator
) -> None:
    rooms = series_assets(frozen.org, "room_occupancy", frozen.config.seed)[:5]
    start, stop = NOW - timedelta(hours=6), NOW - timedelta(hours=1)
    types: dict[str, set[type]] = {}
    for function in ("max", "min", "sum", "first", "last", "mean", "median"):
        body = {
            "filter": {"measurements": ["room_occupancy"], "rooms": {"eq": rooms}, "start": _js_iso(start),
                       "stop": _js_iso(stop), "value": {"gte": 0}},
            "window": {"every": "1h", "function": function},
        }  # fmt: skip
        rows = client.post(REPORTING, body, token=client.token).json()["data"]
        assert rows
        types[function] = {type(row["value"]) for row in rows}
        for row in rows:
            assert not (isinstance(row["value"], float) and row["value"].is_integer()), row
    assert all(types[f] == {int} for f in ("max", "min", "sum", "first", "last"))
    assert float in types["mean"]  # hourly means of head counts have fractions


# get_asset_details with include_devices (src/tools/butlr-get-asset-details.ts, floor case): children,
# parent context and devices, with Sensor.roomID and Hive.roomID selected.
FLOOR_ASSET_DETAILS = """
query GetFloorDetails($id: ID!) {
  floor(id: $id) {
    __typename id name floorNumber timezone installation_date installation_status customID
    capacity { __typename max mid } area { __typename value unit } tags { __typename id name }
    building { __typename id name building_number site { __typename id name timezone } }
    rooms { __typename id name roomType customID capacity { __typename max mid } coordinates }
    zones { __typename id name roomID customID coordinates }
    sensors { __typename id name mac_address mode model roomID hive_serial is_online }
    hives { __typename id name serialNumber roomID isOnline coordinates }
  }
}
"""


def test_asset_details_with_devices_answer_cleanly_on_most_floors(client: Client, emu: ButlrEmulator) -> None:
    """Room-less sensors are floor-entrance sensors on one floor per site; elsewhere no roomID error."""
    clean, with_errors = [], []
    for floor in emu.org.floors_by_id.values():
        response = client.gql(FLOOR_ASSET_DETAILS, {"id": floor.id})
        assert response.status_code == 200
        payload = response.json()
        assert payload["data"]["floor"]["id"] == floor.id
        roomless = [i for i, s in enumerate(floor.sensors or []) if s.room_id is None]
        errors = payload.get("errors", [])
        assert sorted(e["path"] for e in errors) == [["floor", "sensors", i, "roomID"] for i in roomless]
        assert all(e["extensions"]["code"] == "NOT_FOUND" for e in errors)
        (with_errors if errors else clean).append(floor.id)
    assert len(clean) >= 2 * len(with_errors) and len(with_errors) == len(emu.org.sites)


def test_fetch_entity_details_of_an_unknown_id_takes_the_clients_asset_not_found_branch(
    client: Client, emu: ButlrEmulator
) -> None:
    """The client reads a plain ``null`` as "Asset not found" (its other ids still answer); an error would
    fail its whole call (Apollo errorPolicy "all", then ``if (error) throw error``)."""
    query = "query GetRoomDetails($id: ID!) { room(id: $id) { __typename id name } }"
    known = next(iter(emu.org.rooms_by_id))
    assert client.gql(query, {"id": known}).json() == {
        "data": {"room": {"__typename": "Room", "id": known, "name": emu.org.rooms_by_id[known].name}}
    }
    assert client.gql(query, {"id": "room_999"}).json() == {"data": {"room": None}}


# available_rooms (src/tools/butlr-available-rooms.ts): rooms of a floor, or of every site, then the
# "current occupancy" pair over all of their ids in one request each.
ROOMS_BY_FLOOR = """
query GetRoomsByFloor($floorId: ID!) {
  floor(id: $floorId) { __typename id name building_id
    rooms { __typename id name floorID roomType capacity { __typename max mid } area { __typename value unit }
            coordinates customID }
    building { __typename id name site_id } }
}
"""
ALL_ROOMS = """
query GetAllRooms { sites { __typename data { __typename id name buildings { __typename id name site_id
  floors { __typename id name building_id rooms { __typename id name floorID roomType
    capacity { __typename max mid } area { __typename value unit } coordinates customID } } } } } }
"""


def _current_pair(client: Client, kind: str, ids: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The presence and traffic answers of the client's current-occupancy helper for ``ids``."""
    key = {"room": "rooms", "zone": "zones", "floor": "spaces"}[kind]
    answers = []
    for measurement, traffic in ((f"{kind}_occupancy", False), (f"traffic_{kind}_occupancy", True)):
        response = client.post(
            REPORTING, current_occupancy_body(measurement, key, ids, traffic), token=client.token
        )
        assert response.status_code == 200, response.text  # a 400 (unknown measurement) was the zone gap
        answers.append(response.json()["data"])
    return answers[0], answers[1]


def _latest_values(data: dict[str, Any]) -> dict[str, int]:
    """Per asset, the value of its latest timestamp (how the client reads a list leaf: ``[0].value``)."""
    return {asset: by_time[max(by_time)][0]["value"] for asset, by_time in data.items()}


def _truth_at_latest(emu: ButlrEmulator, measurement: str, assets: list[str]) -> dict[str, int]:
    latest = _expected_minutes(emu)[-1]
    return {
        a: minute_values(emu.org, measurement, a, latest, latest + timedelta(minutes=1), emu.config.seed)[0][
            1
        ]
        for a in assets
    }


@pytest.mark.parametrize("scope", ["floor", "org"])
def test_available_rooms_reads_live_occupancy_for_a_floor_and_for_the_whole_org(
    client: Client, frozen: ButlrEmulator, scope: str
) -> None:
    emu = frozen
    if scope == "floor":
        floor = next(iter(emu.org.floors_by_id))
        rooms = [r["id"] for r in client.data(ROOMS_BY_FLOOR, {"floorId": floor})["floor"]["rooms"]]
    else:
        sites = client.data(ALL_ROOMS)["sites"]["data"]
        rooms = [r["id"] for s in sites for b in s["buildings"] for f in b["floors"] for r in f["rooms"]]
        assert len(rooms) == 96  # one request for all of them: the 30-id cap answered {} here before
    presence, traffic = _current_pair(client, "room", rooms)
    covered = [r for r in rooms if r in set(series_assets(emu.org, "room_occupancy", emu.config.seed))]
    with_traffic = [
        r for r in rooms if r in set(series_assets(emu.org, "traffic_room_occupancy", emu.config.seed))
    ]
    assert sorted(presence) == sorted(covered) and sorted(traffic) == sorted(with_traffic) and traffic
    assert _latest_values(presence) == _truth_at_latest(emu, "room_occupancy", covered)
    assert _latest_values(traffic) == _truth_at_latest(emu, "traffic_room_occupancy", with_traffic)
    assert any(_latest_values(presence).values())  # people are in some rooms at 15:21 UTC


def test_zone_occupancy_answers_presence_and_an_empty_traffic_half(
    client: Client, frozen: ButlrEmulator
) -> None:
    emu = frozen
    zones = list(emu.org.zones_by_id)
    presence, traffic = _current_pair(client, "zone", zones)
    covered = series_assets(emu.org, "zone_occupancy", emu.config.seed)
    assert sorted(presence) == sorted(covered) and traffic == {}
    assert _latest_values(presence) == _truth_at_latest(emu, "zone_occupancy", covered)


def test_traffic_flow_today_answers_hourly_in_and_out_rows_per_sensor(
    client: Client, frozen: ButlrEmulator
) -> None:
    """``traffic_flow`` (src/tools/butlr-traffic-flow.ts): ``traffic`` for a room since local midnight."""
    emu = frozen
    room = next(s.room_id for s in emu.org.sensors_by_id.values() if s.mode == "traffic" and s.room_id)
    sensors = [s.id for s in emu.org.sensors_by_id.values() if s.mode == "traffic" and s.room_id == room]
    midnight = datetime(2025, 11, 5, 5, tzinfo=UTC)  # New York; the client's own "today" is a day early
    body = {
        "filter": {"measurements": ["traffic"], "rooms": {"eq": [room]}, "start": _js_iso(midnight)},
        "window": {"every": "1h", "function": "sum", "timezone": "America/New_York"},
        "options": {"format": "json", "timestamp": "RFC3339"},
    }
    rows = client.post(REPORTING, body, token=client.token).json()["data"]
    assert isinstance(rows, list) and {r["sensor_id"] for r in rows} == set(sensors)
    data_end = NOW.replace(second=0) - timedelta(minutes=emu.config.data_lag_minutes)
    for row in rows:
        start = datetime.fromisoformat(row["time"].replace("Z", "+00:00"))
        stop = min(start + timedelta(hours=1), data_end)
        truth = minute_values(
            emu.org, "traffic", row["sensor_id"], start, stop, emu.config.seed, field=row["field"]
        )
        assert row["value"] == sum(v for _, v in truth) > 0  # zero hours are left out (no value filter)


def test_the_busyness_trend_gets_the_documented_stats_shape_not_a_mean(
    client: Client, frozen: ButlrEmulator
) -> None:
    """``space_busyness`` asks for ``occupancy_avg_presence`` and reads ``.mean``: a client bug."""
    room = series_assets(frozen.org, "room_occupancy", frozen.config.seed)[0]
    body = {
        "measurements": ["occupancy_avg_presence"],
        "items": [room],
        "start": _js_iso(NOW - timedelta(days=28)),
        "stop": _js_iso(NOW),
    }
    answer = client.post("/api/v4/reporting/stats", body, token=client.token).json()
    assert list(answer) == ["data"] and list(answer["data"]) == [room]
    assert list(answer["data"][room]) == ["occupancy_avg_presence"]  # as in stats/room-stats-4weeks.json
    assert answer["data"][room]["occupancy_avg_presence"] > 0
