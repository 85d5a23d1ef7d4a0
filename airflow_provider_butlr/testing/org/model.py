"""The emulator's organisation: plain dataclasses for sites, buildings, floors, rooms, zones, devices, tags.

This module is the contract between the emulator's server (GraphQL, auth) and its time-series engine
(reporting, stats). It holds structure only; seeded generation lives in ``org/seed.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Capacity:
    max: int = 0
    mid: int = 0


@dataclass
class Area:
    value: float = 0.0
    unit: str = "sqm"


@dataclass
class Tag:
    id: str
    name: str
    organization_id: str
    floor_ids: list[str] = field(default_factory=list)
    room_ids: list[str] = field(default_factory=list)
    zone_ids: list[str] = field(default_factory=list)


@dataclass
class Sensor:
    id: str
    name: str
    mac_address: str
    sensor_serial: str
    mode: str  # "presence" | "traffic"
    model: str
    floor_id: str | None
    room_id: str | None  # NULL for some sensors (the camelCase roomID resolver errors on them)
    zone_ids: list[str]
    hive_id: str | None
    hive_serial: str | None
    is_entrance: bool
    is_online: bool
    is_streaming: bool
    power_type: str | None  # "Wired" | "Battery" | None
    last_heartbeat: int | None  # Unix seconds
    last_battery_change_date: str | None  # RFC3339 with fractional seconds
    next_battery_change_date: str | None
    battery_change_by_date: str | None
    installation_status: str = "INSTALLED"
    client_id: str = ""

    @property
    def is_placeholder(self) -> bool:
        """Test or mirror device: Butlr's MCP excludes these from health counts."""
        mac = (self.mac_address or "").lower()
        return not mac or mac.startswith(("mi-rr-or", "fa-ke", "fake"))


@dataclass
class Hive:
    id: str
    name: str
    serial_number: str
    floor_id: str
    room_id: str | None
    is_online: bool
    is_streaming: bool
    last_heartbeat: int | None
    net_path_stability: float
    installed: bool
    hive_version: str
    hive_type: str

    @property
    def is_placeholder(self) -> bool:
        serial = (self.serial_number or "").lower()
        return not serial or serial.startswith("fake")


@dataclass
class Zone:
    id: str
    name: str
    floor_id: str
    room_id: str | None  # decorative, as in Butlr
    custom_id: str | None
    capacity: Capacity
    area: Area
    tag_ids: list[str] = field(default_factory=list)


@dataclass
class Room:
    id: str
    name: str
    floor_id: str
    custom_id: str | None
    room_type: str | None
    capacity: Capacity
    area: Area
    tag_ids: list[str] = field(default_factory=list)


@dataclass
class Floor:
    id: str  # "space_..."
    name: str
    building_id: str
    site_id: str
    timezone: str | None
    custom_id: str | None
    floor_number: int
    capacity: Capacity
    area: Area
    installation_date: int | None
    rooms: list[Room] = field(default_factory=list)
    zones: list[Zone] = field(default_factory=list)
    # None (not []) on floors without sensors, as the real API returns.
    sensors: list[Sensor] | None = None
    hives: list[Hive] = field(default_factory=list)
    tag_ids: list[str] = field(default_factory=list)


@dataclass
class Building:
    id: str
    name: str
    site_id: str
    custom_id: str | None
    building_number: int
    capacity: Capacity
    address_lines: list[str]
    country: str
    floors: list[Floor] = field(default_factory=list)


@dataclass
class Site:
    id: str
    name: str
    timezone: str | None  # null for one seeded site, as in real orgs
    custom_id: str | None
    site_number: int
    org_id: str
    butlr_code: str
    buildings: list[Building] = field(default_factory=list)


@dataclass
class Organization:
    """The whole seeded org plus id indexes (filled by :meth:`reindex`)."""

    id: str
    name: str
    sites: list[Site] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    buildings_by_id: dict[str, Building] = field(default_factory=dict)
    floors_by_id: dict[str, Floor] = field(default_factory=dict)
    rooms_by_id: dict[str, Room] = field(default_factory=dict)
    zones_by_id: dict[str, Zone] = field(default_factory=dict)
    sensors_by_id: dict[str, Sensor] = field(default_factory=dict)
    hives_by_id: dict[str, Hive] = field(default_factory=dict)
    tags_by_id: dict[str, Tag] = field(default_factory=dict)
    sites_by_id: dict[str, Site] = field(default_factory=dict)

    def reindex(self) -> None:
        """Rebuild every id index from the site tree and the tag list."""
        self.sites_by_id = {s.id: s for s in self.sites}
        self.buildings_by_id = {b.id: b for s in self.sites for b in s.buildings}
        self.floors_by_id = {f.id: f for b in self.buildings_by_id.values() for f in b.floors}
        self.rooms_by_id = {r.id: r for f in self.floors_by_id.values() for r in f.rooms}
        self.zones_by_id = {z.id: z for f in self.floors_by_id.values() for z in f.zones}
        self.sensors_by_id = {s.id: s for f in self.floors_by_id.values() for s in (f.sensors or [])}
        self.hives_by_id = {h.id: h for f in self.floors_by_id.values() for h in f.hives}
        self.tags_by_id = {t.id: t for t in self.tags}

    def site_of_floor(self, floor_id: str) -> Site:
        return self.sites_by_id[self.floors_by_id[floor_id].site_id]

    def site_timezone(self, floor_id: str) -> str:
        """The site timezone is canonical for every child asset; UTC when the site has none."""
        return self.site_of_floor(floor_id).timezone or "UTC"
