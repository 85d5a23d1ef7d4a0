"""The seeded organisation: determinism, id formats and every quirk the real API shows."""

from __future__ import annotations

import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_butlr.testing.org.model import Organization
from airflow_provider_butlr.testing.org.seed import OrgSize, build_org

NOW = 1_750_000_000  # fixed build instant: heartbeats and battery dates are relative to it
KSUID = re.compile(r"^[a-z]+_[0-9A-Za-z]{27}$")
UUID_ID = re.compile(r"^room_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MAC = re.compile(r"^00-17-0d-00-00(-[0-9a-f]{2}){3}$")
SERIAL = re.compile(r"^[0-9a-f]{16}$")
RFC3339_MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SEEDS = [0, 1, 2, 3, 42]


@pytest.fixture(scope="module", params=SEEDS)
def org(request: pytest.FixtureRequest) -> Organization:
    return build_org(request.param, "small", NOW)


def _sensors(org: Organization) -> list:  # type: ignore[type-arg]
    return list(org.sensors_by_id.values())


def test_same_seed_same_org_and_different_seed_different_org() -> None:
    assert build_org(42, "small", NOW) == build_org(42, "small", NOW)
    assert build_org(42, "small", NOW).id != build_org(43, "small", NOW).id


def test_small_preset_counts(org: Organization) -> None:
    assert len(org.sites) == 3
    assert 10 <= len(org.floors_by_id) <= 12
    assert 90 <= len(org.rooms_by_id) <= 110
    assert org.zones_by_id and org.hives_by_id and org.tags_by_id


def test_site_timezones_dst_europe_and_null(org: Organization) -> None:
    zones = [s.timezone for s in org.sites]
    assert zones[0] == "America/New_York"
    assert zones[1] is not None and zones[1].startswith("Europe/")
    assert None in zones
    for name in filter(None, zones):  # the named ones observe DST
        tz = ZoneInfo(name)
        offsets = {datetime(2025, m, 1, tzinfo=tz).utcoffset() for m in (1, 7)}
        assert len(offsets) == 2


def test_id_formats(org: Organization) -> None:
    prefixes = {
        "site": org.sites_by_id, "building": org.buildings_by_id, "space": org.floors_by_id,
        "room": org.rooms_by_id, "zone": org.zones_by_id, "sensor": org.sensors_by_id,
        "hive": org.hives_by_id, "tag": org.tags_by_id,
    }  # fmt: skip
    for prefix, items in prefixes.items():
        for ident in items:
            assert ident.startswith(prefix + "_")
            assert KSUID.match(ident) or (prefix == "room" and UUID_ID.match(ident)), ident
    assert sum(bool(UUID_ID.match(r)) for r in org.rooms_by_id) == 1
    assert KSUID.match(org.id) and org.id.startswith("org_")


def test_mac_and_serial_formats_and_placeholders(org: Organization) -> None:
    sensors = _sensors(org)
    real = [s for s in sensors if not s.is_placeholder]
    assert all(MAC.match(s.mac_address) for s in real)
    assert any(s.mac_address.startswith("fa-ke") for s in sensors)
    assert any(s.mac_address.startswith("mi-rr-or") for s in sensors)
    for sensor in sensors:
        assert len(sensor.mac_address.split("-")) == 8
    hives = list(org.hives_by_id.values())
    assert all(SERIAL.match(h.serial_number) for h in hives if not h.is_placeholder)
    assert any(h.is_placeholder and h.serial_number.startswith("fake") for h in hives)


def test_sensor_modes_entrances_and_null_rooms(org: Organization) -> None:
    sensors = _sensors(org)
    assert {s.mode for s in sensors} == {"presence", "traffic"}
    assert any(s.is_entrance and s.mode == "traffic" and s.room_id is None for s in sensors)
    assert any(s.mode == "traffic" and s.room_id is not None for s in sensors)  # room doors
    # Room-less sensors are as rare as in Butlr's fixtures: floor entrances only, on one floor per site.
    roomless = [s for s in sensors if s.room_id is None]
    assert roomless and all(s.is_entrance and s.mode == "traffic" for s in roomless)
    floors = {s.floor_id for s in roomless}
    assert sorted(org.floors_by_id[f].site_id for f in floors) == sorted(org.sites_by_id)
    with_sensors = [f for f in org.floors_by_id.values() if f.sensors]
    assert len(floors) < len(with_sensors) / 2
    for sensor in sensors:
        assert sensor.floor_id in org.floors_by_id
        assert sensor.room_id is None or org.rooms_by_id[sensor.room_id].floor_id == sensor.floor_id
        assert sensor.hive_id in org.hives_by_id


def test_one_floor_without_sensors(org: Organization) -> None:
    empty = [f for f in org.floors_by_id.values() if f.sensors is None]
    assert len(empty) == 1 and empty[0].hives == []
    assert all(f.sensors for f in org.floors_by_id.values() if f is not empty[0])


def test_health_variety(org: Organization) -> None:
    sensors = [s for s in _sensors(org) if not s.is_placeholder]
    offline = [s for s in sensors if not s.is_online]
    assert offline and all(NOW - s.last_heartbeat > 86400 for s in offline)  # type: ignore[operator]
    assert all(NOW - s.last_heartbeat < 600 for s in sensors if s.is_online)  # type: ignore[operator]
    assert any(not h.is_online for h in org.hives_by_id.values())
    assert {s.power_type for s in sensors} == {None, "Wired", "Battery"}
    assert sum(s.power_type is None for s in sensors) > len(sensors) / 2  # mostly null, as in real data
    assert all(s.battery_change_by_date is None for s in sensors if s.power_type == "Wired")
    days = [
        (datetime.fromisoformat(s.battery_change_by_date.replace("Z", "+00:00")).timestamp() - NOW) / 86400
        for s in sensors
        if s.battery_change_by_date
    ]
    assert any(d < 0 for d in days) and any(0 <= d <= 30 for d in days) and any(d > 30 for d in days)
    for sensor in sensors:
        for value in (
            sensor.battery_change_by_date,
            sensor.next_battery_change_date,
            sensor.last_battery_change_date,
        ):
            assert value is None or RFC3339_MICRO.match(value)


def test_capacities_are_realistic(org: Organization) -> None:
    rooms = list(org.rooms_by_id.values())
    assert sum(r.capacity.max > 0 for r in rooms) > 0.8 * len(rooms)
    assert all(0 <= r.capacity.mid <= r.capacity.max for r in rooms)
    assert any(r.capacity.max == 0 and r.capacity.mid == 0 for r in rooms)  # unset, as in real data


def test_tags_apply_to_floors_rooms_zones_and_one_applies_nowhere(org: Organization) -> None:
    tags = list(org.tags_by_id.values())
    assert any(t.floor_ids for t in tags) and any(t.room_ids for t in tags) and any(t.zone_ids for t in tags)
    assert sum(not (t.floor_ids or t.room_ids or t.zone_ids) for t in tags) == 1
    for tag in tags:  # both directions agree
        assert all(tag.id in org.rooms_by_id[r].tag_ids for r in tag.room_ids)
        assert all(tag.id in org.zones_by_id[z].tag_ids for z in tag.zone_ids)
        assert all(tag.id in org.floors_by_id[f].tag_ids for f in tag.floor_ids)


def test_large_preset_builds_fast() -> None:
    started = time.perf_counter()
    org = build_org(42, "large", NOW)
    elapsed = time.perf_counter() - started
    assert len(org.rooms_by_id) >= 2000
    assert elapsed < 2.0, elapsed


def test_custom_size_and_validation() -> None:
    org = build_org(
        5,
        OrgSize(sites=1, buildings_per_site=1, floors_per_building=2, rooms_per_floor=3, zones_per_floor=1),
        NOW,
    )
    assert len(org.floors_by_id) == 2 and len(org.rooms_by_id) == 6
    with pytest.raises(ValueError, match="rooms_per_floor must be >= 1"):
        OrgSize(rooms_per_floor=0)
    with pytest.raises(ValueError, match="allowed"):
        build_org(1, "medium", NOW)


def test_heartbeats_follow_the_build_clock() -> None:
    later = build_org(42, "small", NOW + 3600)
    earlier = build_org(42, "small", NOW)
    assert [s.id for s in later.sensors_by_id.values()] == [s.id for s in earlier.sensors_by_id.values()]
    pairs = zip(later.sensors_by_id.values(), earlier.sensors_by_id.values(), strict=True)
    assert all(a.last_heartbeat - b.last_heartbeat == 3600 for a, b in pairs)  # type: ignore[operator]
