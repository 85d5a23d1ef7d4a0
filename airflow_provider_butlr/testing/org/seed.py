"""Deterministic generation of the emulator's organisation from a seed and a size preset."""

from __future__ import annotations

import random
import string
import time
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

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

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
# Site timezones in order; None reproduces real sites without a timezone.
SITE_TIMEZONES: tuple[str | None, ...] = (
    "America/New_York",
    "Europe/Berlin",
    None,
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
)
SITE_NAMES = (
    "New York HQ",
    "Berlin Office",
    "Remote Lab",
    "San Francisco Hub",
    "Tokyo Studio",
    "Sydney Office",
)
SITE_PLACES = (
    (["350 Example Avenue", "New York, NY 10001"], "US"),
    (["Beispielstrasse 12", "10115 Berlin"], "DE"),
    (["1 Sample Road", "Unknown"], "US"),
    (["500 Sample Street", "San Francisco, CA 94105"], "US"),
    (["1-2-3 Example-cho", "Tokyo 100-0001"], "JP"),
    (["42 Example Parade", "Sydney NSW 2000"], "AU"),
)
# (name, room_type, capacity max range); room_type is often null in real data.
ROOM_KINDS: tuple[tuple[str, str | None, tuple[int, int]], ...] = (
    ("Conference Room", "conference", (6, 16)),
    ("Meeting Room", None, (4, 10)),
    ("Focus Room", "focus", (1, 4)),
    ("Phone Booth", None, (1, 2)),
    ("Open Area", "open_space", (20, 60)),
    ("Kitchen", "kitchen", (8, 20)),
    ("Huddle Room", None, (3, 6)),
    ("Lounge", None, (6, 14)),
)
TAG_NAMES = ("videoconf", "focus", "huddle", "quiet", "executive", "unused-tag")


@dataclass(frozen=True)
class OrgSize:
    """Counts that shape the generated organisation."""

    sites: int = 3
    buildings_per_site: int = 2
    floors_per_building: int = 2
    rooms_per_floor: int = 8
    zones_per_floor: int = 4

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self)):
            if getattr(self, name) < 1:
                raise ValueError(f"OrgSize.{name} must be >= 1, got {getattr(self, name)}")
        if self.sites * self.buildings_per_site * self.floors_per_building < 2:
            raise ValueError("OrgSize needs at least 2 floors in total (one is generated without sensors)")


SIZE_PRESETS: dict[str, OrgSize] = {
    "small": OrgSize(),
    "large": OrgSize(
        sites=6, buildings_per_site=4, floors_per_building=5, rooms_per_floor=20, zones_per_floor=8
    ),
}


def resolve_size(size: str | OrgSize) -> OrgSize:
    """A preset name or an explicit :class:`OrgSize`."""
    if isinstance(size, OrgSize):
        return size
    try:
        return SIZE_PRESETS[size]
    except KeyError:
        raise ValueError(f"size={size!r}; allowed: {sorted(SIZE_PRESETS)} or an OrgSize(...)") from None


def rfc3339_micro(moment: datetime) -> str:
    """Butlr's ``Time`` scalar: RFC3339 UTC with fractional seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Ids:
    """KSUID-like ids (``<prefix>_`` + 27 base62 chars), MACs and serials from one seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._seen: set[str] = set()

    def ksuid(self, prefix: str) -> str:
        while True:
            body = "2" + "".join(self.rng.choices(BASE62, k=26))
            ident = f"{prefix}_{body}"
            if ident not in self._seen:
                self._seen.add(ident)
                return ident

    def uuid_id(self, prefix: str) -> str:
        return f"{prefix}_{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"

    def hexbytes(self, count: int) -> list[str]:
        return [f"{self.rng.randrange(256):02x}" for _ in range(count)]

    def mac(self) -> str:
        return "-".join(["00", "17", "0d", "00", "00", *self.hexbytes(3)])

    def hive_serial(self) -> str:
        return "".join(self.hexbytes(8))


class _OrgBuilder:
    """Builds one organisation; every random draw comes from ``rng`` in a fixed order."""

    def __init__(self, seed: int, size: OrgSize, now: float) -> None:
        self.rng = random.Random(seed)
        self.ids = _Ids(self.rng)
        self.size = size
        self.now = int(now)
        self.now_dt = datetime.fromtimestamp(self.now, tz=UTC)
        self.org = Organization(id=self.ids.ksuid("org"), name="Butlr Emulator Demo Org")
        self.client_id = self.ids.ksuid("client")
        self.floors: list[Floor] = []
        self.placeholder_macs = 0

    def build(self) -> Organization:
        for site_index in range(self.size.sites):
            self.org.sites.append(self._site(site_index))
        self._quirks()
        self._roomless_entrances()
        self._tags()
        self.org.reindex()
        return self.org

    # --- tree --------------------------------------------------------------------------------
    def _site(self, index: int) -> Site:
        tz = SITE_TIMEZONES[index % len(SITE_TIMEZONES)]
        name = SITE_NAMES[index % len(SITE_NAMES)] + ("" if index < len(SITE_NAMES) else f" {index + 1}")
        site = Site(
            id=self.ids.ksuid("site"),
            name=name,
            timezone=tz,
            custom_id=f"SITE-{index + 1:03d}" if index % 2 == 0 else None,
            site_number=index + 1,
            org_id=self.org.id,
            butlr_code=f"BTLR{index + 1:03d}",
        )
        for b in range(self.size.buildings_per_site):
            site.buildings.append(self._building(site, index, b))
        return site

    def _building(self, site: Site, site_index: int, index: int) -> Building:
        lines, country = SITE_PLACES[site_index % len(SITE_PLACES)]
        building = Building(
            id=self.ids.ksuid("building"),
            name=f"{site.name} - Building {chr(ord('A') + index % 26)}",
            site_id=site.id,
            custom_id=f"BLD-{site_index + 1}{index + 1:02d}" if index % 2 == 0 else None,
            building_number=index + 1,
            capacity=Capacity(0, 0),
            address_lines=list(lines),
            country=country,
        )
        for f in range(self.size.floors_per_building):
            building.floors.append(self._floor(site, building, f))
        building.capacity = Capacity(
            max=sum(fl.capacity.max for fl in building.floors),
            mid=sum(fl.capacity.mid for fl in building.floors),
        )
        return building

    def _capacity(self, low: int, high: int) -> Capacity:
        top = self.rng.randint(low, high)
        return Capacity(max=top, mid=max(1, top // 2))

    def _floor(self, site: Site, building: Building, index: int) -> Floor:
        floor = Floor(
            id=self.ids.ksuid("space"),
            name=f"Floor {index + 1}",
            building_id=building.id,
            site_id=site.id,
            timezone=site.timezone,
            custom_id=f"FL-{index + 1:02d}" if self.rng.random() < 0.5 else None,
            floor_number=index + 1,
            capacity=Capacity(0, 0),
            area=Area(round(self.rng.uniform(800, 2500), 1), "sqm"),
            installation_date=self.now - self.rng.randint(200, 900) * 86400,
        )
        self.floors.append(floor)
        for r in range(self.size.rooms_per_floor):
            floor.rooms.append(self._room(floor, r))
        for z in range(self.size.zones_per_floor):
            floor.zones.append(self._zone(floor, z))
        floor.hives = [self._hive(floor, h) for h in range(1 + (index % 2))]
        floor.sensors = self._sensors(floor)
        total = sum(r.capacity.max for r in floor.rooms)
        floor.capacity = Capacity(max=total, mid=total // 2)
        return floor

    def _room(self, floor: Floor, index: int) -> Room:
        name, room_type, (low, high) = ROOM_KINDS[index % len(ROOM_KINDS)]
        number = index // len(ROOM_KINDS) + 1
        # About one room in twelve has no capacity configured ({max: 0, mid: 0} as in real data).
        capacity = Capacity(0, 0) if self.rng.random() < 0.08 else self._capacity(low, high)
        # The first floor's last room has a legacy UUID-suffixed id, as seen in real data.
        legacy = len(self.floors) == 1 and index == self.size.rooms_per_floor - 1
        return Room(
            id=self.ids.uuid_id("room") if legacy else self.ids.ksuid("room"),
            name=f"{name} {floor.floor_number}.{number}"
            if name != "Open Area"
            else f"Open Area {floor.floor_number}",
            floor_id=floor.id,
            custom_id=f"R-{floor.floor_number}{index + 1:02d}" if self.rng.random() < 0.3 else None,
            room_type=room_type if self.rng.random() < 0.6 else None,
            capacity=capacity,
            area=Area(round(capacity.max * self.rng.uniform(2.0, 4.0) + 5, 1), "sqm"),
        )

    def _zone(self, floor: Floor, index: int) -> Zone:
        room = floor.rooms[index % len(floor.rooms)] if floor.rooms and index % 2 == 0 else None
        capacity = self._capacity(2, 12)
        return Zone(
            id=self.ids.ksuid("zone"),
            name=f"Zone {floor.floor_number}-{chr(ord('A') + index % 26)}{index // 26 or ''}",
            floor_id=floor.id,
            room_id=room.id if room else None,
            custom_id=f"Z-{index + 1:02d}" if self.rng.random() < 0.3 else None,
            capacity=capacity,
            area=Area(round(capacity.max * 3.0, 1), "sqm"),
        )

    def _heartbeat(self, offline: bool) -> int:
        if offline:
            return self.now - self.rng.randint(2 * 86400, 45 * 86400)
        return self.now - self.rng.randint(5, 120)

    def _hive(self, floor: Floor, index: int) -> Hive:
        # Some hives are offline; the first hive of the second floor always is (so every seed has one).
        offline = self.rng.random() < 0.12 or (len(self.floors) == 2 and index == 0)
        return Hive(
            id=self.ids.ksuid("hive"),
            name=f"Hive {floor.name} #{index + 1}",
            serial_number=self.ids.hive_serial(),
            floor_id=floor.id,
            room_id=None,
            is_online=not offline,
            is_streaming=not offline,
            last_heartbeat=self._heartbeat(offline),
            net_path_stability=round(
                self.rng.uniform(0.2, 0.6) if offline else self.rng.uniform(0.85, 1.0), 3
            ),
            installed=True,
            hive_version=self.rng.choice(("2.4.1", "2.5.0", "2.6.3")),
            hive_type=self.rng.choice(("Hive", "Hive Mini")),
        )

    def _sensor(
        self, floor: Floor, mode: str, room: Room | None, zone_ids: list[str], entrance: bool
    ) -> Sensor:
        hive = self.rng.choice(floor.hives)
        offline = (not hive.is_online) or self.rng.random() < 0.08
        power = self.rng.choices(("Battery", "Wired", None), weights=(3, 2, 15))[0]
        sensor = Sensor(
            id=self.ids.ksuid("sensor"),
            name=f"{'Traffic' if mode == 'traffic' else 'Presence'} {room.name if room else floor.name}",
            mac_address=self.ids.mac(),
            sensor_serial="SN" + "".join(self.ids.hexbytes(5)).upper(),
            mode=mode,
            model="Heimdall" if mode == "traffic" else self.rng.choice(("Heatic 2", "Heatic 2+")),
            floor_id=floor.id,
            room_id=room.id if room else None,
            zone_ids=zone_ids,
            hive_id=hive.id,
            hive_serial=hive.serial_number,
            is_entrance=entrance,
            is_online=not offline,
            is_streaming=not offline,
            power_type=power,
            last_heartbeat=self._heartbeat(offline),
            last_battery_change_date=None,
            next_battery_change_date=None,
            battery_change_by_date=None,
            client_id=self.client_id,
        )
        if power != "Wired" and (power == "Battery" or self.rng.random() < 0.3):
            self._battery_dates(sensor)
        return sensor

    def _battery_dates(self, sensor: Sensor) -> None:
        """Past (critical), within 30 days (due soon) or far away (healthy)."""
        days_ahead = self.rng.choice((-20, -3, 7, 25, 120, 300))
        due = self.now_dt + timedelta(
            days=days_ahead, seconds=self.rng.randint(0, 86399), microseconds=self.rng.randint(0, 999999)
        )
        last = due - timedelta(days=730)
        sensor.battery_change_by_date = rfc3339_micro(due)
        sensor.next_battery_change_date = rfc3339_micro(due - timedelta(days=14))
        sensor.last_battery_change_date = rfc3339_micro(last)

    def _sensors(self, floor: Floor) -> list[Sensor]:
        """Every sensor sits in a room, as in Butlr's fixtures (no null ``roomID`` among 249 sensors);
        :meth:`_roomless_entrances` takes the room away from a few floor-entrance sensors afterwards."""
        sensors: list[Sensor] = []
        zones_by_room: dict[str, list[str]] = {}
        for zone in floor.zones:
            if zone.room_id:
                zones_by_room.setdefault(zone.room_id, []).append(zone.id)
        for index, room in enumerate(floor.rooms):
            sensors.append(self._sensor(floor, "presence", room, zones_by_room.get(room.id, []), False))
            if room.capacity.max >= 20:  # large rooms get a second presence sensor
                sensors.append(self._sensor(floor, "presence", room, [], False))
            if index % 3 == 0:  # a traffic sensor on the room door
                sensors.append(self._sensor(floor, "traffic", room, [], False))
        # The room behind the floor's entrance: its open area (the first room when it has none).
        lobby = next((r for r in floor.rooms if r.name.startswith("Open Area")), floor.rooms[0])
        for _ in range(2):  # floor entrances: traffic sensors in the room at the floor's entrance
            sensors.append(self._sensor(floor, "traffic", lobby, [], True))
        unzoned = [z.id for z in floor.zones if not z.room_id]
        if unzoned:  # a presence sensor in the open area that also covers a zone outside any room
            sensors.append(self._sensor(floor, "presence", lobby, unzoned[:1], False))
        return sensors

    def _roomless_entrances(self) -> None:
        """On one floor per site (its last with sensors) the entrance sensors have no room, so
        ``Sensor.roomID`` keeps its resolver error there (butlr-api.md §4.5) and nowhere else."""
        for site in self.org.sites:
            floors = [f for b in site.buildings for f in b.floors if f.sensors]
            for sensor in (floors[-1].sensors or []) if floors else []:
                if sensor.is_entrance:
                    sensor.room_id, sensor.name = None, f"Traffic {floors[-1].name}"

    # --- quirks and tags -----------------------------------------------------------------------
    def _quirks(self) -> None:
        """Placeholder test devices and a floor without sensors (``sensors`` None, no hives)."""
        last = self.floors[-1]
        last.sensors = None  # as the real API returns for floors without sensors
        last.hives = []
        with_sensors = [f for f in self.floors if f.sensors]
        test_floor = with_sensors[len(with_sensors) // 2]
        hive = test_floor.hives[0]
        fake_hive = Hive(
            id=self.ids.ksuid("hive"),
            name="Test Hive",
            serial_number="fake" + "".join(self.ids.hexbytes(6)),
            floor_id=test_floor.id,
            room_id=None,
            is_online=True,
            is_streaming=True,
            last_heartbeat=self.now - 30,
            net_path_stability=1.0,
            installed=False,
            hive_version="0.0.0",
            hive_type="Virtual",
        )
        test_floor.hives.append(fake_hive)
        placeholders = []
        for n in range(3):
            mac = f"fa-ke-{n:02x}-00-00-" + "-".join(self.ids.hexbytes(3))
            placeholders.append((mac, fake_hive))
        placeholders.append(("mi-rr-or-00-00-" + "-".join(self.ids.hexbytes(3)), hive))
        for mac, parent in placeholders:
            sensor = self._sensor(test_floor, "presence", test_floor.rooms[0], [], False)
            sensor.mac_address = mac
            sensor.hive_id, sensor.hive_serial = parent.id, parent.serial_number
            sensor.name = f"Test device {mac[:8]}"
            test_floor.sensors = [*(test_floor.sensors or []), sensor]

    def _tags(self) -> None:
        """Tags on floors, rooms and zones; the last tag is applied nowhere."""
        tags = [Tag(id=self.ids.ksuid("tag"), name=name, organization_id=self.org.id) for name in TAG_NAMES]
        by_name = {t.name: t for t in tags}
        for floor in self.floors:
            for room in floor.rooms:
                if room.room_type == "conference" or room.name.startswith("Conference"):
                    self._apply(by_name["videoconf"], room)
                if room.name.startswith(("Focus", "Phone")):
                    self._apply(by_name["focus"], room)
                if room.name.startswith("Huddle"):
                    self._apply(by_name["huddle"], room)
            for index, zone in enumerate(floor.zones):
                if index % 2 == 1:
                    self._apply(by_name["quiet"], zone)
                if index == 0:
                    self._apply(by_name["huddle"], zone)
        for floor in self.floors[::4]:
            self._apply(by_name["executive"], floor)
        self._apply(by_name["huddle"], self.floors[0])
        self.org.tags = tags

    @staticmethod
    def _apply(tag: Tag, asset: Floor | Room | Zone) -> None:
        asset.tag_ids.append(tag.id)
        if isinstance(asset, Floor):
            tag.floor_ids.append(asset.id)
        elif isinstance(asset, Room):
            tag.room_ids.append(asset.id)
        else:
            tag.zone_ids.append(asset.id)


def build_org(seed: int = 42, size: str | OrgSize = "small", now: float | None = None) -> Organization:
    """The seeded organisation; identical for the same (seed, size, now)."""
    return _OrgBuilder(seed, resolve_size(size), time.time() if now is None else now).build()
