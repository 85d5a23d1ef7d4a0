"""Pure parts of queries.py: topology lookups and the device-health rules (no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.reporting.health import (
    SENSORS_QUERY,
    battery_status,
    device_health_report,
    is_placeholder_hive,
    is_placeholder_sensor,
)
from airflow_provider_butlr.reporting.topology import TOPOLOGY_QUERY, Topology, unwrap
from tests.support.paths import FIXTURES

pytestmark = pytest.mark.airflow_independent  # pure functions: run once, not per Airflow minor

# Sanitized real API responses from Butlr's MCP server repository (MIT, see fixtures/butlr/LICENSE).
FIXTURES = FIXTURES / "butlr"
NOW = datetime(2025, 10, 14, 16, 0, tzinfo=UTC)


def tree() -> Topology:
    def floor(fid: str, rooms: list[str], zones: list[str]) -> dict:
        return {
            "id": fid,
            "name": fid,
            "rooms": [
                {"id": r, "name": r, "capacity": {"max": 4, "mid": 2}, "tags": [{"id": "tag_q"}]}
                for r in rooms
            ],
            "zones": [{"id": z, "name": z} for z in zones],
            "sensors": None,
        }

    return Topology(
        [
            {
                "id": "site_ny",
                "name": "NY",
                "timezone": "America/New_York",
                "buildings": [
                    {"id": "building_1", "floors": [floor("space_1", ["room_1", "room_2"], ["zone_1"])]},
                    {"id": "building_2", "floors": [floor("space_2", ["room_3"], [])]},
                ],
            },
            {
                "id": "site_be",
                "name": "Berlin",
                "timezone": "Europe/Berlin",
                "buildings": [
                    {"id": "building_3", "floors": [floor("space_3", ["room_4"], [])]},
                ],
            },
            {
                "id": "site_x",
                "name": "No timezone",
                "timezone": None,
                "buildings": [
                    {"id": "building_4", "floors": [floor("space_4", [], ["zone_9"])]},
                ],
            },
        ]
    )


def test_sites_and_buildings_resolve_to_floors_rooms_and_zones() -> None:
    topo = tree()
    assert topo.resolve({"sites": ["site_ny"], "rooms": ["room_4"]}) == {
        "floors": ["space_1", "space_2"],
        "rooms": ["room_1", "room_2", "room_3", "room_4"],
        "zones": ["zone_1"],
    }
    assert topo.resolve({"buildings": ["building_2"]}) == {"floors": ["space_2"], "rooms": ["room_3"]}


def test_unknown_and_mistyped_ids_are_refused() -> None:
    with pytest.raises(
        ButlrConfigurationError, match="'site_nope' is not a site, building, floor, room or zone"
    ):
        tree().resolve({"sites": ["site_nope"]})
    with pytest.raises(ButlrConfigurationError, match="sites: 'space_1' is not a site id"):
        tree().resolve({"sites": ["space_1"]})


def test_assets_are_grouped_by_their_site_timezone(caplog: pytest.LogCaptureFixture) -> None:
    topo = tree()
    groups = topo.group_by_timezone({"rooms": ["room_1", "room_4"], "zones": ["zone_9", "zone_1"]})
    assert groups == {
        "America/New_York": {"rooms": ["room_1"], "zones": ["zone_1"]},
        "Europe/Berlin": {"rooms": ["room_4"]},
        "UTC": {"zones": ["zone_9"]},
    }
    assert "has no timezone in Butlr; using UTC" in caplog.text


def test_tags_across_timezones_and_sensors_need_an_explicit_timezone() -> None:
    topo = tree()
    with pytest.raises(ButlrConfigurationError, match="tag 'tag_q' is on assets in 2 timezones"):
        topo.timezone_of("tag_q")
    with pytest.raises(ButlrConfigurationError, match="pass timezone= explicitly"):
        topo.timezone_of("sensor_1")


def test_tables_are_flat_and_json_serialisable() -> None:
    tables = tree().tables()
    assert [len(tables[k]) for k in ("sites", "buildings", "floors", "rooms", "zones")] == [3, 4, 4, 4, 2]
    assert tables["rooms"][0] == {
        "id": "room_1",
        "name": "room_1",
        "site_id": "site_ny",
        "building_id": "building_1",
        "floor_id": "space_1",
        "custom_id": None,
        "capacity_max": 4,
        "timezone": "America/New_York",
        "tag_ids": ["tag_q"],
    }
    assert tables["zones"][1]["timezone"] == "UTC"
    json.dumps(tables)


def test_unwrap_handles_wrapped_bare_and_null_lists() -> None:
    assert unwrap({"sites": {"data": [{"id": "site_1"}]}}, "sites") == [{"id": "site_1"}]
    assert unwrap({"tags": [{"id": "tag_1"}]}, "tags") == [{"id": "tag_1"}]
    assert unwrap({"sensors": {"data": None}}, "sensors") == []
    with pytest.raises(ButlrDataError, match="GraphQL answer has no 'hives' field"):
        unwrap({}, "hives")


def test_queries_select_snake_case_sensor_fields_only() -> None:
    assert "floorID" not in SENSORS_QUERY and "roomID" not in SENSORS_QUERY
    assert "floor_id" in SENSORS_QUERY and "last_heartbeat" in SENSORS_QUERY
    assert "timezone" in TOPOLOGY_QUERY


# --- device health -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sensor", "status"),
    [
        ({"power_type": "Wired", "battery_change_by_date": "2020-01-01T00:00:00Z"}, "wired"),
        ({"power_type": None, "battery_change_by_date": None}, "unknown"),
        ({"power_type": "Battery", "battery_change_by_date": "2025-10-14T15:59:59.5Z"}, "critical"),
        ({"power_type": None, "battery_change_by_date": "2025-11-13T15:00:00.809134Z"}, "due_soon"),
        ({"power_type": None, "battery_change_by_date": "2025-11-14T16:00:01Z"}, "healthy"),
        ({"power_type": None, "battery_change_by_date": "not a date"}, "unknown"),
    ],
)
def test_battery_status_follows_butlrs_rule(sensor: dict, status: str) -> None:
    assert battery_status(sensor, NOW) == status


def test_placeholders() -> None:
    assert is_placeholder_sensor({"mac_address": "fa-ke-00-00"})
    assert is_placeholder_sensor({"mac_address": "MI-RR-OR-01"})
    assert is_placeholder_sensor({"mac_address": ""})
    assert not is_placeholder_sensor({"mac_address": "00-17-0d-00-00-6e-0e-b6"})
    assert is_placeholder_hive({"serialNumber": "fake-123"}) and is_placeholder_hive({"serialNumber": None})
    assert not is_placeholder_hive({"serialNumber": "SN-TEST-0001"})


def test_device_health_of_the_real_fixture_excludes_test_devices() -> None:
    data = json.loads((FIXTURES / "graphql/full-topology-org.json").read_text())
    floors = [f for s in data["sites"]["data"] for b in s["buildings"] for f in b["floors"]]
    sensors = [s for f in floors for s in (f["sensors"] or [])]
    hives = [h for f in floors for h in (f["hives"] or [])]
    report = device_health_report(sensors, hives, NOW)
    assert report["sensors"]["total"] == 126 and report["sensors"]["placeholders_excluded"] == 123
    assert report["sensors"]["offline"] == 13 and report["hives"]["offline"] == 8
    assert report["sensors"]["offline_share"] == round(13 / 126, 4)
    assert not any(s["mac_address"].startswith(("fa-ke", "mi-rr-or")) for s in report["offline_sensors"])
    assert sum(report["battery"].values()) == 126
    ages = [s["hours_since_heartbeat"] for s in report["offline_sensors"]]
    assert ages == sorted(ages, reverse=True)
    json.dumps(report)


def test_stale_heartbeats_count_as_offline_when_asked_and_scope_by_floor() -> None:
    now_s = int(NOW.timestamp())
    sensors = [
        {
            "id": "sensor_a",
            "mac_address": "00-01",
            "is_online": True,
            "last_heartbeat": now_s - 3 * 3600,
            "floor_id": "space_1",
        },
        {
            "id": "sensor_b",
            "mac_address": "00-02",
            "is_online": True,
            "last_heartbeat": now_s - 60,
            "floor_id": "space_1",
        },
        {
            "id": "sensor_c",
            "mac_address": "00-03",
            "is_online": False,
            "last_heartbeat": None,
            "floor_id": "space_2",
        },
    ]
    report = device_health_report(sensors, [], NOW, offline_after_hours=2)
    assert [(s["id"], s["hours_since_heartbeat"]) for s in report["offline_sensors"]] == [
        ("sensor_c", None),
        ("sensor_a", 3.0),
    ]
    assert report["offline_sensors"][1]["last_heartbeat"] == "2025-10-14T13:00:00Z"
    scoped = device_health_report(sensors, [], NOW, floor_ids=["space_1"])
    assert scoped["sensors"] == {
        "total": 2,
        "online": 2,
        "offline": 0,
        "offline_share": 0.0,
        "placeholders_excluded": 0,
    }


def test_a_site_without_timezone_is_warned_about_once_per_topology(caplog: pytest.LogCaptureFixture) -> None:
    topo = tree()
    with caplog.at_level("WARNING", logger="airflow_provider_butlr.reporting.topology"):
        for _ in range(52):
            assert topo.timezone_of("zone_9") == "UTC"
        assert topo.site_timezone("site_x") == "UTC"
    warnings = [r for r in caplog.records if "has no timezone in Butlr" in r.getMessage()]
    assert len(warnings) == 1
    assert "site_x" in warnings[0].getMessage()
    with caplog.at_level("WARNING", logger="airflow_provider_butlr.reporting.topology"):
        tree().timezone_of("zone_9")  # a new topology (a new task) warns again
    assert len([r for r in caplog.records if "has no timezone in Butlr" in r.getMessage()]) == 2
