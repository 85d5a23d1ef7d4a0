"""Which series a reporting query covers, with each series' row metadata (butlr-api.md 3.2/3.3).

A series is one asset (and, for ``traffic``, one field) of one requested measurement. Id filters of
different keys combine with AND, ids within one key with OR (Flux filter semantics); ``tags`` expands
to the tagged floors/rooms/zones of presence measurements (rows then carry that ``tag_id``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from airflow_provider_butlr.testing.org.model import Floor, Organization, Room, Sensor, Zone
from airflow_provider_butlr.testing.timeseries.series import (
    FLOOR_OCCUPANCY,
    FLOOR_PRESENCE_SECS,
    ROOM_OCCUPANCY,
    ROOM_PRESENCE_SECS,
    TAG_OCCUPANCY,
    TRAFFIC,
    TRAFFIC_FIELDS,
    TRAFFIC_FLOOR_OCCUPANCY,
    TRAFFIC_ROOM_OCCUPANCY,
    TRAFFIC_ZONE_OCCUPANCY,
    ZONE_OCCUPANCY,
    ZONE_PRESENCE_SECS,
    SeriesSource,
)

# The metadata columns of a row, in the order the real API prints them (after the value columns).
ROW_COLUMNS = (
    "tag_id",
    "building_id",
    "building_name",
    "hive_id",
    "hive_serial",
    "sensor_id",
    "space_id",
    "space_name",
    "room_id",
    "room_name",
    "zone_id",
    "zone_name",
    "mac_address",
)
# Internal (measurement, field) names shown in rows; never the requested name (3.2).
_ROW_NAMES = {
    ROOM_OCCUPANCY: ("occupancy", "occupancy"),
    ZONE_OCCUPANCY: ("occupancy", "occupancy"),
    FLOOR_OCCUPANCY: ("occupancy", "occupancy"),
    TAG_OCCUPANCY: ("occupancy", "occupancy"),
    TRAFFIC_ROOM_OCCUPANCY: ("aggregator_headcount", "aggregator_occupancy"),
    TRAFFIC_FLOOR_OCCUPANCY: ("aggregator_headcount", "aggregator_occupancy"),
    TRAFFIC_ZONE_OCCUPANCY: ("aggregator_headcount", "aggregator_occupancy"),
    ROOM_PRESENCE_SECS: ("presence_time", "presence_time_secs"),  # [GUESS]
    ZONE_PRESENCE_SECS: ("presence_time", "presence_time_secs"),
    FLOOR_PRESENCE_SECS: ("presence_time", "presence_time_secs"),
}
_AGGREGATOR = (TRAFFIC_ROOM_OCCUPANCY, TRAFFIC_FLOOR_OCCUPANCY, TRAFFIC_ZONE_OCCUPANCY)
_ROOM_KIND = (ROOM_OCCUPANCY, ROOM_PRESENCE_SECS)
_ZONE_KIND = (ZONE_OCCUPANCY, ZONE_PRESENCE_SECS)
_FLOOR_KIND = (FLOOR_OCCUPANCY, FLOOR_PRESENCE_SECS)
# filter key -> the row column it matches
_FILTER_COLUMNS = {
    "spaces": "space_id",
    "rooms": "room_id",
    "zones": "zone_id",
    "buildings": "building_id",
    "sensors": "sensor_id",
    "hives": "hive_id",
    "tags": "tag_id",
}


@dataclass(frozen=True)
class SeriesInfo:
    """One series: where its values come from and the metadata its rows carry."""

    measurement: str
    asset_id: str
    field: str | None
    row_measurement: str
    row_field: str
    preprocessed: bool
    columns: Mapping[str, str]  # ROW_COLUMNS plus floor/room/zone_custom_id when set
    match: Mapping[str, str]  # filter column -> id (unlike `columns`, never blanked by a display quirk)
    site_id: str


class _Builder:
    def __init__(self, org: Organization) -> None:
        self.org = org

    def base(self, floor: Floor | None) -> dict[str, str]:
        columns = dict.fromkeys(ROW_COLUMNS, "")
        if floor is not None:
            building = self.org.buildings_by_id.get(floor.building_id)
            columns.update(space_id=floor.id, space_name=floor.name)
            if building is not None:
                columns.update(building_id=building.id, building_name=building.name)
            if floor.custom_id:
                columns["floor_custom_id"] = floor.custom_id
        return columns

    def add_room(self, columns: dict[str, str], room: Room | None) -> None:
        if room is not None:
            columns.update(room_id=room.id, room_name=room.name)
            if room.custom_id:
                columns["room_custom_id"] = room.custom_id

    def info(
        self,
        measurement: str,
        asset_id: str,
        columns: dict[str, str],
        floor: Floor | None,
        field: str | None = None,
    ) -> SeriesInfo:
        row_measurement, row_field = _ROW_NAMES.get(measurement, (TRAFFIC, field or ""))
        match = {col: columns[col] for col in _FILTER_COLUMNS.values() if columns[col]}
        if measurement in _AGGREGATOR:  # the real rows leave the building empty (MCP fixture)
            columns.update(building_id="", building_name="")
        return SeriesInfo(
            measurement,
            asset_id,
            field,
            row_measurement,
            row_field,
            measurement in _AGGREGATOR,
            columns,
            match,
            floor.site_id if floor else "",
        )

    def room(self, measurement: str, room: Room, tag_id: str = "") -> SeriesInfo:
        floor = self.org.floors_by_id[room.floor_id]
        columns = self.base(floor)
        self.add_room(columns, room)
        columns["tag_id"] = tag_id
        return self.info(measurement, room.id, columns, floor)

    def zone(self, measurement: str, zone: Zone, tag_id: str = "") -> SeriesInfo:
        floor = self.org.floors_by_id[zone.floor_id]
        columns = self.base(floor)
        self.add_room(columns, self.org.rooms_by_id.get(zone.room_id or ""))
        columns.update(zone_id=zone.id, zone_name=zone.name, tag_id=tag_id)
        if zone.custom_id:
            columns["zone_custom_id"] = zone.custom_id
        return self.info(measurement, zone.id, columns, floor)

    def floor(self, measurement: str, floor: Floor, tag_id: str = "") -> SeriesInfo:
        columns = self.base(floor)
        columns["tag_id"] = tag_id
        return self.info(measurement, floor.id, columns, floor)

    def tag(self, tag_id: str) -> SeriesInfo:
        columns = self.base(None)
        columns["tag_id"] = tag_id
        return self.info(TAG_OCCUPANCY, tag_id, columns, None)

    def sensor(self, sensor: Sensor, field: str) -> SeriesInfo:
        floor = self.org.floors_by_id.get(sensor.floor_id or "")
        columns = self.base(floor)
        self.add_room(columns, self.org.rooms_by_id.get(sensor.room_id or ""))
        columns.update(
            hive_id=sensor.hive_id or "",
            hive_serial=sensor.hive_serial or "",
            sensor_id=sensor.id,
            mac_address=sensor.mac_address or "",
        )
        return self.info(TRAFFIC, sensor.id, columns, floor, field)


def _candidates(
    org: Organization, source: SeriesSource, measurement: str, tag_ids: tuple[str, ...] | None
) -> Iterator[SeriesInfo]:
    build = _Builder(org)
    have = source.assets(measurement)
    if tag_ids is not None and measurement != TAG_OCCUPANCY:
        yield from _tagged(org, build, measurement, tag_ids, set(have))
        return
    for asset_id in have:
        if measurement in _ROOM_KIND or measurement == TRAFFIC_ROOM_OCCUPANCY:
            yield build.room(measurement, org.rooms_by_id[asset_id])
        elif measurement in _ZONE_KIND or measurement == TRAFFIC_ZONE_OCCUPANCY:
            yield build.zone(measurement, org.zones_by_id[asset_id])
        elif measurement in _FLOOR_KIND or measurement == TRAFFIC_FLOOR_OCCUPANCY:
            yield build.floor(measurement, org.floors_by_id[asset_id])
        elif measurement == TAG_OCCUPANCY:
            yield build.tag(asset_id)
        else:
            sensor = org.sensors_by_id[asset_id]
            yield from (build.sensor(sensor, f) for f in TRAFFIC_FIELDS)


def _tagged(
    org: Organization, build: _Builder, measurement: str, tag_ids: tuple[str, ...], have: set[str]
) -> Iterator[SeriesInfo]:
    """Presence series of the assets carrying each requested tag (traffic data has no tags)."""
    for tag_id in tag_ids:
        tag = org.tags_by_id.get(tag_id)
        if tag is None:
            continue
        if measurement in _ROOM_KIND:
            yield from (
                build.room(measurement, org.rooms_by_id[r], tag_id) for r in tag.room_ids if r in have
            )
        elif measurement in _ZONE_KIND:
            yield from (
                build.zone(measurement, org.zones_by_id[z], tag_id) for z in tag.zone_ids if z in have
            )
        elif measurement in _FLOOR_KIND:
            yield from (
                build.floor(measurement, org.floors_by_id[f], tag_id) for f in tag.floor_ids if f in have
            )


def _matches(info: SeriesInfo, id_filters: Mapping[str, tuple[str, ...]], org_id: str) -> bool:
    for key, ids in id_filters.items():
        if key == "clients":
            if info.site_id not in ids and org_id not in ids:
                return False
        elif info.match.get(_FILTER_COLUMNS[key]) not in ids:
            return False
    return True


def _all_candidates(org: Organization, source: SeriesSource, measurement: str) -> list[SeriesInfo]:
    """Every series of a measurement without tag expansion (memoised on the source: orgs are static)."""
    key = ("reporting_series", measurement)
    if key not in source.memo:
        source.memo[key] = list(_candidates(org, source, measurement, None))
    cached: list[SeriesInfo] = source.memo[key]
    return cached


def select_series(
    org: Organization,
    source: SeriesSource,
    measurements: tuple[str, ...],
    id_filters: Mapping[str, tuple[str, ...]],
) -> list[SeriesInfo]:
    """Every series of ``measurements`` that passes ``id_filters``, in a stable order."""
    tag_ids = id_filters.get("tags")
    selected: list[SeriesInfo] = []
    for measurement in measurements:
        expand = tag_ids is not None and measurement != TAG_OCCUPANCY
        candidates = (
            _candidates(org, source, measurement, tag_ids)
            if expand
            else _all_candidates(org, source, measurement)
        )
        selected.extend(info for info in candidates if _matches(info, id_filters, org.id))
    return selected
