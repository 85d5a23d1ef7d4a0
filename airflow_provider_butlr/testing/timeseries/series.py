"""Deterministic minute-level occupancy and traffic for the emulator's organisation (the ground truth).

Every reporting and stats answer is aggregated from the per-minute values defined here, so tests can
compute expected answers independently with :func:`minute_values` and :func:`series_assets`.

The model, per UTC minute (a minute ``m`` covers ``[m, m + 60 s)``):

* **Presence occupancy** of a room or zone: a diurnal (peaks late morning and mid afternoon, lunch dip,
  near zero at night) and weekday (Friday lighter, weekends nearly empty) profile in the *site's* local
  time, scaled by ``capacity.max`` (defaults when 0: room 6, zone 4) and a per-asset popularity, with
  seeded smooth noise; a non-negative integer. An asset has presence data only when a presence-mode
  sensor covers it (a room: a presence sensor with that ``room_id``; a zone: one listing it in
  ``zone_ids``), as in Butlr where uncovered areas have no data.
* **floor_occupancy** = the sum over the floor's covered rooms (zones are sub-areas and not added).
* **tag_occupancy** = the sum over the tag's covered rooms and zones (floors carrying the tag are not
  added, as the docs define it over rooms/zones).
* **Presence seconds** (``*_presence_time_secs``): 0 when the room/zone is empty, else 24..60 s growing
  with occupancy; a floor's value is the maximum over its covered rooms.
* **traffic** per traffic-mode sensor: ``in``/``out`` counts per minute, built so that their running
  difference follows a second occupancy curve of the sensor, plus random pass-throughs.
* **traffic_room_occupancy** of a room (rooms with traffic sensors): ``max(0, running + in - out)`` over
  the room's traffic sensors, restarted at 0 at each local midnight of the site. Entrance sensors bound to
  the room count too: Butlr's client notes that the Reporting API aggregates by ``room_id`` whatever
  ``is_entrance`` says (``src/utils/occupancy-helpers.ts``, "a café occupying the floor's entry area").
  **traffic_floor_occupancy** of a floor: the same over its ``is_entrance`` traffic sensors.
  **traffic_zone_occupancy** of a zone: the same over the traffic sensors listing the zone in ``zone_ids``
  (Butlr's client sends the measurement for zones; its docs say zones support presence only, so the seeded
  organisation has no such sensor and the measurement answers no rows there).

Values are deterministic for (seed, asset id, minute): they are generated one local day at a time per
asset from a RNG seeded by (seed, asset id, local date) and cached (LRU), so the value of a minute never
depends on the query that asked for it. Data-quality masking (recent minutes missing or incomplete,
the future) is applied by the reporting engine, not here.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_provider_butlr.testing.org.model import Floor, Organization, Room, Sensor, Zone
from airflow_provider_butlr.testing.timeseries.days import (
    day_layout,
    presence_day,
    presence_secs_day,
    sum_arrays,
    traffic_day,
    traffic_occupancy_day,
)
from airflow_provider_butlr.testing.timeseries.timeutils import MINUTE, local_date_ordinal

ROOM_OCCUPANCY = "room_occupancy"
ZONE_OCCUPANCY = "zone_occupancy"
FLOOR_OCCUPANCY = "floor_occupancy"
TAG_OCCUPANCY = "tag_occupancy"
ROOM_PRESENCE_SECS = "room_presence_time_secs"
ZONE_PRESENCE_SECS = "zone_presence_time_secs"
FLOOR_PRESENCE_SECS = "floor_presence_time_secs"
TRAFFIC = "traffic"
TRAFFIC_ROOM_OCCUPANCY = "traffic_room_occupancy"
TRAFFIC_FLOOR_OCCUPANCY = "traffic_floor_occupancy"
TRAFFIC_ZONE_OCCUPANCY = "traffic_zone_occupancy"

MEASUREMENTS: tuple[str, ...] = (
    TRAFFIC,
    TRAFFIC_FLOOR_OCCUPANCY,
    TRAFFIC_ROOM_OCCUPANCY,
    TRAFFIC_ZONE_OCCUPANCY,
    FLOOR_OCCUPANCY,
    ROOM_OCCUPANCY,
    ZONE_OCCUPANCY,
    TAG_OCCUPANCY,
    FLOOR_PRESENCE_SECS,
    ROOM_PRESENCE_SECS,
    ZONE_PRESENCE_SECS,
)
TRAFFIC_FIELDS = ("in", "out")

DEFAULT_ROOM_CAPACITY = 6
DEFAULT_ZONE_CAPACITY = 4
DEFAULT_FLOOR_CAPACITY = 40
DEFAULT_SENSOR_CAPACITY = 10


def gather(
    tz_name: str, first_minute: int, count: int, day_values: Callable[[int], Sequence[int]]
) -> list[int]:
    """Values for UTC minutes ``[first_minute, first_minute + count)`` from a per-local-day source."""
    out: list[int] = []
    minute, end = first_minute, first_minute + count
    while minute < end:
        ordinal = local_date_ordinal(tz_name, minute * MINUTE)
        day_start, walls = day_layout(tz_name, ordinal)
        low, high = minute - day_start, min(len(walls), end - day_start)
        out.extend(day_values(ordinal)[low:high])
        minute = day_start + high
    return out


def _sum_lists(lists: list[list[int]], count: int) -> list[int]:
    if len(lists) == 1:
        return lists[0]
    return sum_arrays([array("i", values) for values in lists], count).tolist() if lists else [0] * count


def _max_lists(lists: list[list[int]], count: int) -> list[int]:
    if len(lists) == 1:
        return lists[0]
    return list(map(max, *lists)) if lists else [0] * count


# --- the org's series ----------------------------------------------------------------------------------
@dataclass
class _Coverage:
    """Which assets have which kind of data, derived once per organisation."""

    covered_rooms: dict[str, Room] = field(default_factory=dict)
    covered_zones: dict[str, Zone] = field(default_factory=dict)
    floor_rooms: dict[str, list[Room]] = field(default_factory=dict)
    traffic_sensors: dict[str, Sensor] = field(default_factory=dict)
    room_traffic: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    zone_traffic: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    floor_traffic: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    sensor_capacity: dict[str, int] = field(default_factory=dict)


def room_capacity(room: Room) -> int:
    """The capacity the generator scales a room by (``capacity.max``, or a default when unset)."""
    return room.capacity.max or DEFAULT_ROOM_CAPACITY


def zone_capacity(zone: Zone) -> int:
    """The capacity the generator scales a zone by."""
    return zone.capacity.max or DEFAULT_ZONE_CAPACITY


def _floor_capacity(floor: Floor) -> int:
    return floor.capacity.max or sum(room_capacity(r) for r in floor.rooms) or DEFAULT_FLOOR_CAPACITY


def _coverage(org: Organization) -> _Coverage:
    cov = _Coverage()
    for floor in org.floors_by_id.values():
        sensors = floor.sensors or []
        presence = [s for s in sensors if s.mode == "presence"]
        room_ids = {s.room_id for s in presence if s.room_id}
        zone_ids = {z for s in presence for z in s.zone_ids}
        rooms = [r for r in floor.rooms if r.id in room_ids]
        cov.covered_rooms.update((r.id, r) for r in rooms)
        cov.covered_zones.update((z.id, z) for z in floor.zones if z.id in zone_ids)
        if rooms:
            cov.floor_rooms[floor.id] = rooms
        traffic = [s for s in sensors if s.mode == "traffic"]
        entrances = [s for s in traffic if s.is_entrance]
        for sensor in traffic:
            cov.traffic_sensors[sensor.id] = sensor
            if sensor.is_entrance:
                capacity = max(1, _floor_capacity(floor) // len(entrances))
            elif sensor.room_id in org.rooms_by_id:
                in_room = sum(1 for s in traffic if s.room_id == sensor.room_id and not s.is_entrance)
                capacity = max(1, room_capacity(org.rooms_by_id[sensor.room_id]) // in_room)
            else:
                capacity = DEFAULT_SENSOR_CAPACITY
            cov.sensor_capacity[sensor.id] = capacity
        for room in floor.rooms:  # every traffic sensor of the room, entrances included (MCP, see above)
            own = tuple((s.id, cov.sensor_capacity[s.id]) for s in traffic if s.room_id == room.id)
            if own:
                cov.room_traffic[room.id] = own
        for zone in floor.zones:
            own = tuple((s.id, cov.sensor_capacity[s.id]) for s in traffic if zone.id in s.zone_ids)
            if own:
                cov.zone_traffic[zone.id] = own
        if entrances:
            cov.floor_traffic[floor.id] = tuple((s.id, cov.sensor_capacity[s.id]) for s in entrances)
    return cov


class SeriesSource:
    """Per-minute values of every series of one organisation for one seed."""

    def __init__(self, org: Organization, seed: int) -> None:
        self.org = org
        self.seed = seed
        self.coverage = _coverage(org)
        # Derived per-org data other modules memoise here (the org is static while it is served).
        self.memo: dict[tuple[str, str], Any] = {}

    def tz_of_floor(self, floor_id: str | None) -> str:
        """The site timezone of a floor (UTC when the site has none or the floor is unknown)."""
        if floor_id is None or floor_id not in self.org.floors_by_id:
            return "UTC"
        return self.org.site_timezone(floor_id)

    def assets(self, measurement: str) -> list[str]:
        """Ids of the assets that have data for ``measurement``, in organisation order."""
        cov = self.coverage
        listing: dict[str, Callable[[], list[str]]] = {
            ROOM_OCCUPANCY: lambda: list(cov.covered_rooms),
            ROOM_PRESENCE_SECS: lambda: list(cov.covered_rooms),
            ZONE_OCCUPANCY: lambda: list(cov.covered_zones),
            ZONE_PRESENCE_SECS: lambda: list(cov.covered_zones),
            FLOOR_OCCUPANCY: lambda: list(cov.floor_rooms),
            FLOOR_PRESENCE_SECS: lambda: list(cov.floor_rooms),
            TAG_OCCUPANCY: lambda: [t.id for t in self.org.tags if self._tag_members(t.id)],
            TRAFFIC: lambda: list(cov.traffic_sensors),
            TRAFFIC_ROOM_OCCUPANCY: lambda: list(cov.room_traffic),
            TRAFFIC_FLOOR_OCCUPANCY: lambda: list(cov.floor_traffic),
            TRAFFIC_ZONE_OCCUPANCY: lambda: list(cov.zone_traffic),
        }
        if measurement not in listing:
            raise ValueError(f"unknown measurement {measurement!r}; allowed: {', '.join(MEASUREMENTS)}")
        return listing[measurement]()

    def _tag_members(self, tag_id: str) -> list[Room | Zone]:
        tag = self.org.tags_by_id.get(tag_id)
        if tag is None:
            return []
        cov = self.coverage
        rooms: list[Room | Zone] = [cov.covered_rooms[r] for r in tag.room_ids if r in cov.covered_rooms]
        return rooms + [cov.covered_zones[z] for z in tag.zone_ids if z in cov.covered_zones]

    def values(
        self, measurement: str, asset_id: str, first_minute: int, count: int, field: str | None = None
    ) -> list[int]:
        """Values of one series for UTC minutes ``[first_minute, first_minute + count)``.

        ``asset_id`` is a room, zone, floor (``space_``) or tag id, or for ``traffic`` a sensor id with
        ``field`` ``"in"`` or ``"out"``. Raises KeyError when the asset has no such series.
        """
        cov, seed = self.coverage, self.seed
        if measurement in (ROOM_OCCUPANCY, ROOM_PRESENCE_SECS):
            room = cov.covered_rooms[asset_id]
            return self._presence(
                measurement == ROOM_PRESENCE_SECS,
                room.id,
                room_capacity(room),
                room.floor_id,
                first_minute,
                count,
            )
        if measurement in (ZONE_OCCUPANCY, ZONE_PRESENCE_SECS):
            zone_ = cov.covered_zones[asset_id]
            return self._presence(
                measurement == ZONE_PRESENCE_SECS,
                zone_.id,
                zone_capacity(zone_),
                zone_.floor_id,
                first_minute,
                count,
            )
        if measurement in (FLOOR_OCCUPANCY, FLOOR_PRESENCE_SECS):
            secs = measurement == FLOOR_PRESENCE_SECS
            parts = [
                self._presence(secs, r.id, room_capacity(r), r.floor_id, first_minute, count)
                for r in cov.floor_rooms[asset_id]
            ]
            return _max_lists(parts, count) if secs else _sum_lists(parts, count)
        if measurement == TAG_OCCUPANCY:
            members = self._tag_members(asset_id)
            if not members:
                raise KeyError(asset_id)
            return _sum_lists(
                [
                    self.values(
                        ROOM_OCCUPANCY if isinstance(m, Room) else ZONE_OCCUPANCY, m.id, first_minute, count
                    )
                    for m in members
                ],
                count,
            )
        if measurement == TRAFFIC:
            if field not in TRAFFIC_FIELDS:
                raise ValueError(f"traffic needs field 'in' or 'out', got {field!r}")
            sensor = cov.traffic_sensors[asset_id]
            index = TRAFFIC_FIELDS.index(field)
            capacity = cov.sensor_capacity[sensor.id]
            tz = self.tz_of_floor(sensor.floor_id)
            return gather(
                tz, first_minute, count, lambda o: traffic_day(seed, sensor.id, capacity, tz, o)[index]
            )
        if measurement in (TRAFFIC_ROOM_OCCUPANCY, TRAFFIC_FLOOR_OCCUPANCY, TRAFFIC_ZONE_OCCUPANCY):
            if measurement == TRAFFIC_ROOM_OCCUPANCY:
                sensors, floor_id = cov.room_traffic[asset_id], self.org.rooms_by_id[asset_id].floor_id
            elif measurement == TRAFFIC_ZONE_OCCUPANCY:
                sensors, floor_id = cov.zone_traffic[asset_id], self.org.zones_by_id[asset_id].floor_id
            else:
                sensors, floor_id = cov.floor_traffic[asset_id], asset_id
            tz = self.tz_of_floor(floor_id)
            return gather(tz, first_minute, count, lambda o: traffic_occupancy_day(seed, sensors, tz, o))
        raise ValueError(f"unknown measurement {measurement!r}; allowed: {', '.join(MEASUREMENTS)}")

    def _presence(
        self, secs: bool, asset_id: str, capacity: int, floor_id: str, first: int, count: int
    ) -> list[int]:
        tz, seed = self.tz_of_floor(floor_id), self.seed
        day_fn = presence_secs_day if secs else presence_day
        return gather(tz, first, count, lambda o: day_fn(seed, asset_id, capacity, tz, o))


_SOURCES: dict[tuple[int, int], SeriesSource] = {}


def series_source(org: Organization, seed: int) -> SeriesSource:
    """The (cached) :class:`SeriesSource` of ``org`` for ``seed``."""
    key = (id(org), seed)
    source = _SOURCES.get(key)
    if source is None or source.org is not org:
        if len(_SOURCES) > 32:
            _SOURCES.clear()
        source = _SOURCES[key] = SeriesSource(org, seed)
    return source


# --- public ground truth ------------------------------------------------------------------------------
def _minute_range(start: datetime, stop: datetime) -> tuple[int, int]:
    first = -(-int(start.timestamp()) // MINUTE)
    end = -(-int(stop.timestamp()) // MINUTE)
    return first, max(0, end - first)


def minute_values(
    org: Organization,
    measurement: str,
    asset_id: str,
    start: datetime,
    stop: datetime,
    seed: int,
    *,
    field: str | None = None,
) -> list[tuple[datetime, int]]:
    """Ground truth: ``(minute start, value)`` for every UTC minute starting in ``[start, stop)``.

    ``measurement`` is a reporting name (``room_occupancy``, ``traffic_room_occupancy``, ``traffic``
    with ``field`` "in"/"out" and a sensor id, ...). No data-quality masking: the reporting engine drops
    minutes from ``now - data_lag_minutes`` on; tests apply that themselves. KeyError if the asset has no
    such series (see :func:`series_assets`).
    """
    first, count = _minute_range(start, stop)
    values = series_source(org, seed).values(measurement, asset_id, first, count, field)
    return [(datetime.fromtimestamp((first + i) * MINUTE, UTC), v) for i, v in enumerate(values)]


def series_assets(org: Organization, measurement: str, seed: int = 0) -> list[str]:
    """Ground truth: the ids of the assets that have data for ``measurement`` (sensor ids for traffic)."""
    return series_source(org, seed).assets(measurement)
