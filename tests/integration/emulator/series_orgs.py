"""A small hand-built organisation for the time-series engine's tests: every asset's role is known.

Layout (ids are readable on purpose; the engine must not care about id formats):

* ``site_ny`` (America/New_York) / ``building_ny`` / ``space_ny1``: rooms ``room_a`` (capacity 10, custom id,
  one presence + one traffic sensor), ``room_b`` (capacity 4, presence), ``room_c`` (capacity 0, presence),
  ``room_dark`` (no sensor: no data); zones ``zone_a`` (in room_a, covered by room_a's sensor) and
  ``zone_free`` (covered by a zone-only sensor with room_id NULL), ``zone_dark`` (uncovered); entrance
  traffic sensors ``sensor_e1``/``sensor_e2``.
* ``space_ny2`` on the same building: ``sensors`` is None (no data at all), room ``room_ny2``.
* ``site_be`` (Europe/Berlin) / ``space_be``: ``room_be`` (presence + traffic).
* ``site_null`` (timezone null) / ``space_null``: ``room_null`` (presence).
* Tags: ``tag_meet`` on room_a, room_b and zone_a; ``tag_floor`` on space_ny1 only; ``tag_unused``.
"""

from __future__ import annotations

from airflow_provider_butlr.testing.org.model import (
    Area,
    Building,
    Capacity,
    Floor,
    Hive,
    Organization,
    Room,
    Sensor,
    Site,
    Tag,
    Zone,
)


def _sensor(
    sensor_id: str,
    floor_id: str,
    mode: str,
    room_id: str | None = None,
    zone_ids: list[str] | None = None,
    entrance: bool = False,
) -> Sensor:
    return Sensor(
        id=sensor_id,
        name=sensor_id,
        mac_address=f"00-17-0d-00-00-00-00-{len(sensor_id):02x}",
        sensor_serial="SN" + sensor_id.upper(),
        mode=mode,
        model="Heimdall" if mode == "traffic" else "Heatic 2",
        floor_id=floor_id,
        room_id=room_id,
        zone_ids=zone_ids or [],
        hive_id=f"hive_{floor_id}",
        hive_serial=f"serial-{floor_id}",
        is_entrance=entrance,
        is_online=True,
        is_streaming=True,
        power_type=None,
        last_heartbeat=None,
        last_battery_change_date=None,
        next_battery_change_date=None,
        battery_change_by_date=None,
    )


def _hive(floor_id: str) -> Hive:
    return Hive(
        id=f"hive_{floor_id}",
        name="Hive",
        serial_number=f"serial-{floor_id}",
        floor_id=floor_id,
        room_id=None,
        is_online=True,
        is_streaming=True,
        last_heartbeat=None,
        net_path_stability=1.0,
        installed=True,
        hive_version="2.6.3",
        hive_type="Hive",
    )


def _room(room_id: str, floor_id: str, capacity: int, custom_id: str | None = None) -> Room:
    return Room(
        room_id,
        room_id.replace("_", " ").title(),
        floor_id,
        custom_id,
        None,
        Capacity(capacity, capacity // 2),
        Area(20.0),
    )


def _floor(
    floor_id: str, building_id: str, site_id: str, timezone: str | None, custom_id: str | None = None
) -> Floor:
    return Floor(
        floor_id,
        floor_id.upper(),
        building_id,
        site_id,
        timezone,
        custom_id,
        1,
        Capacity(0, 0),
        Area(500.0),
        None,
    )


def _site(site_id: str, timezone: str | None, floors: list[Floor]) -> Site:
    building = Building(
        f"building_{site_id[5:]}",
        f"Building {site_id[5:]}",
        site_id,
        None,
        1,
        Capacity(0, 0),
        [],
        "US",
        floors,
    )
    return Site(site_id, site_id.upper(), timezone, None, 1, "org_test", "BTLR", [building])


def build_series_org() -> Organization:
    """The organisation described in the module docstring."""
    ny1 = _floor("space_ny1", "building_ny", "site_ny", "America/New_York", custom_id="FL-NY1")
    ny1.rooms = [
        _room("room_a", ny1.id, 10, custom_id="R-A"),
        _room("room_b", ny1.id, 4),
        _room("room_c", ny1.id, 0),
        _room("room_dark", ny1.id, 8),
    ]
    ny1.zones = [
        Zone("zone_a", "Zone A", ny1.id, "room_a", "Z-A", Capacity(4, 2), Area(5.0)),
        Zone("zone_free", "Zone Free", ny1.id, None, None, Capacity(3, 1), Area(5.0)),
        Zone("zone_dark", "Zone Dark", ny1.id, None, None, Capacity(3, 1), Area(5.0)),
    ]
    ny1.hives = [_hive(ny1.id)]
    ny1.sensors = [
        _sensor("sensor_pa", ny1.id, "presence", "room_a", ["zone_a"]),
        _sensor("sensor_ta", ny1.id, "traffic", "room_a"),
        _sensor("sensor_pb", ny1.id, "presence", "room_b"),
        _sensor("sensor_pc", ny1.id, "presence", "room_c"),
        _sensor("sensor_pz", ny1.id, "presence", None, ["zone_free"]),
        _sensor("sensor_e1", ny1.id, "traffic", None, entrance=True),
        _sensor("sensor_e2", ny1.id, "traffic", None, entrance=True),
    ]
    ny2 = _floor("space_ny2", "building_ny", "site_ny", "America/New_York")
    ny2.rooms = [_room("room_ny2", ny2.id, 6)]
    be = _floor("space_be", "building_be", "site_be", "Europe/Berlin")
    be.rooms = [_room("room_be", be.id, 12)]
    be.hives = [_hive(be.id)]
    be.sensors = [
        _sensor("sensor_pbe", be.id, "presence", "room_be"),
        _sensor("sensor_tbe", be.id, "traffic", "room_be"),
    ]
    null = _floor("space_null", "building_null", "site_null", None)
    null.rooms = [_room("room_null", null.id, 6)]
    null.hives = [_hive(null.id)]
    null.sensors = [_sensor("sensor_pnull", null.id, "presence", "room_null")]
    org = Organization(id="org_test", name="Series Test Org")
    org.sites = [
        _site("site_ny", "America/New_York", [ny1, ny2]),
        _site("site_be", "Europe/Berlin", [be]),
        _site("site_null", None, [null]),
    ]
    org.tags = [
        Tag("tag_meet", "meet", org.id, room_ids=["room_a", "room_b"], zone_ids=["zone_a"]),
        Tag("tag_floor", "floor", org.id, floor_ids=["space_ny1"]),
        Tag("tag_unused", "unused", org.id),
    ]
    for room_id in ("room_a", "room_b"):
        next(r for r in ny1.rooms if r.id == room_id).tag_ids.append("tag_meet")
    ny1.zones[0].tag_ids.append("tag_meet")
    ny1.tag_ids.append("tag_floor")
    org.reindex()
    return org
