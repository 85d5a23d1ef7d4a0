"""GraphQL query texts, the topology tree as lookups, and the pure device-health rules.

Queries select snake_case fields only: the camelCase ``floorID``/``roomID`` resolvers on sensors
error for sensors without a room (Butlr API reference 4.5). Hives only have camelCase health
fields (``isOnline``, ``lastHeartbeat``, ``serialNumber``), which are safe.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.reporting import format_time, validate_ids
from airflow_provider_butlr.timeutil import parse_iso_utc

log = logging.getLogger(__name__)

TOPOLOGY_QUERY = """
query ButlrTopology {
  sites { data { id name timezone customID
    buildings { id name site_id customID
      floors { id name building_id timezone customID capacity { max mid } tags { id name }
        rooms { id name floor_id customID roomType capacity { max mid } tags { id name } }
        zones { id name floor_id room_id customID capacity { max mid } tags { id name } } } } } }
}
""".strip()

SENSORS_QUERY = """
query ButlrSensors {
  sensors { data { id name mac_address mode model floor_id room_id hive_id hive_serial is_entrance
    is_online is_streaming power_type last_heartbeat battery_change_by_date next_battery_change_date
    last_battery_change_date installation_status } }
}
""".strip()

HIVES_QUERY = """
query ButlrHives {
  hives { data { id name serialNumber floor_id room_id isOnline isStreaming lastHeartbeat
    netPathStability installed hiveVersion hiveType } }
}
""".strip()

TAGS_QUERY = """
query ButlrTags { tags { id name organization_id rooms { id name } zones { id name } floors { id name } } }
""".strip()

PLACEHOLDER_MAC_PREFIXES = ("mi-rr-or", "fa-ke", "fake")
PLACEHOLDER_SERIAL_PREFIXES = ("fake",)
BATTERY_STATUSES = ("critical", "due_soon", "healthy", "wired", "unknown")
DEFAULT_DUE_SOON_DAYS = 30


def _list(value: Any) -> list[Any]:
    """Butlr returns ``null`` for some empty lists (``Floor.sensors``): treat it as empty."""
    return list(value) if isinstance(value, list) else []


def unwrap(data: Any, field: str) -> list[dict[str, Any]]:
    """The list under ``data[field]``, whether wrapped as ``{data: [...]}`` (sites) or bare (tags)."""
    if not isinstance(data, Mapping) or field not in data:
        raise ButlrDataError(f"GraphQL answer has no {field!r} field")
    value = data[field]
    if isinstance(value, Mapping):
        value = value.get("data")
    if value is None:
        return []
    if not isinstance(value, list):
        raise ButlrDataError(f"GraphQL {field!r} is a {type(value).__name__}, expected a list")
    return [dict(item) for item in value if isinstance(item, Mapping)]


# --- topology ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Asset:
    """One floor, room or zone with where it lives and the timezone its data is reported in."""

    kind: str  # "floors" | "rooms" | "zones"
    id: str
    name: str
    site_id: str
    building_id: str
    floor_id: str
    custom_id: str | None
    capacity_max: int | None
    tag_ids: tuple[str, ...]


class Topology:
    """The site tree (sites -> buildings -> floors -> rooms/zones) with id lookups.

    A site's timezone is canonical for everything below it (as in Butlr's own tools); a site with
    a null timezone falls back to UTC, with a warning.
    """

    def __init__(self, sites: Sequence[Mapping[str, Any]]) -> None:
        self.sites: list[dict[str, Any]] = [dict(s) for s in sites]
        self.site_by_id: dict[str, dict[str, Any]] = {s["id"]: s for s in self.sites}
        self.buildings: dict[str, dict[str, Any]] = {}
        self.assets: dict[str, Asset] = {}
        self._warned_no_timezone: set[str] = set()  # one warning per site and topology (i.e. per task)
        for site in self.sites:
            for building in _list(site.get("buildings")):
                self.buildings[building["id"]] = {**building, "site_id": site["id"]}
                for floor in _list(building.get("floors")):
                    self._add("floors", floor, site["id"], building["id"], floor["id"])
                    for room in _list(floor.get("rooms")):
                        self._add("rooms", room, site["id"], building["id"], floor["id"])
                    for zone in _list(floor.get("zones")):
                        self._add("zones", zone, site["id"], building["id"], floor["id"])

    @classmethod
    def from_graphql(cls, data: Any) -> Topology:
        return cls(unwrap(data, "sites"))

    def _add(self, kind: str, node: Mapping[str, Any], site_id: str, building_id: str, floor_id: str) -> None:
        capacity = node.get("capacity") if isinstance(node.get("capacity"), Mapping) else {}
        self.assets[node["id"]] = Asset(
            kind=kind,
            id=node["id"],
            name=str(node.get("name") or ""),
            site_id=site_id,
            building_id=building_id,
            floor_id=floor_id,
            custom_id=node.get("customID"),
            capacity_max=capacity.get("max") if capacity else None,
            tag_ids=tuple(t["id"] for t in _list(node.get("tags")) if isinstance(t, Mapping) and "id" in t),
        )

    # -- lookups --

    def site_timezone(self, site_id: str) -> str:
        site = self.site_by_id.get(site_id)
        if site is None:
            raise ButlrConfigurationError(f"site {site_id!r} is not in the topology this connection can see")
        tz = site.get("timezone")
        if not tz:
            if site_id not in self._warned_no_timezone:
                self._warned_no_timezone.add(site_id)
                log.warning("Site %s (%s) has no timezone in Butlr; using UTC.", site_id, site.get("name"))
            return "UTC"
        return str(tz)

    def site_of(self, asset_id: str) -> str:
        if asset_id in self.site_by_id:
            return asset_id
        if asset_id in self.buildings:
            return str(self.buildings[asset_id]["site_id"])
        if asset_id in self.assets:
            return self.assets[asset_id].site_id
        raise ButlrConfigurationError(
            f"{asset_id!r} is not a site, building, floor, room or zone in the topology"
        )

    def timezone_of(self, asset_id: str) -> str:
        """The reporting timezone of a site/building/floor/room/zone (or of a tag's assets)."""
        if asset_id.startswith("tag_"):
            zones = {self.timezone_of(a.id) for a in self.assets.values() if asset_id in a.tag_ids}
            if len(zones) == 1:
                return zones.pop()
            raise ButlrConfigurationError(
                f"tag {asset_id!r} is on assets in {len(zones)} timezones ({', '.join(sorted(zones)) or 'none'}); "
                "pass timezone= explicitly"
            )
        if asset_id.startswith(("sensor_", "hive_")):
            raise ButlrConfigurationError(
                f"{asset_id!r}: the site timezone of sensors and hives is not resolved; pass timezone= explicitly"
            )
        return self.site_timezone(self.site_of(asset_id))

    def assets_in(
        self, container_ids: Iterable[str], kinds: Sequence[str] = ("floors", "rooms", "zones")
    ) -> dict[str, list[str]]:
        """Floors/rooms/zones inside the given sites, buildings or floors, in topology order."""
        wanted = set(container_ids)
        for container in wanted:
            self.site_of(container)  # raises for unknown ids
        found: dict[str, list[str]] = {kind: [] for kind in kinds}
        for asset in self.assets.values():
            if asset.kind in found and wanted & {asset.site_id, asset.building_id, asset.floor_id}:
                found[asset.kind].append(asset.id)
        return found

    def resolve(self, selection: Mapping[str, Iterable[str] | None]) -> dict[str, list[str]]:
        """Asset ids by kind: ``sites``/``buildings`` expand to their floors, rooms and zones."""
        resolved: dict[str, list[str]] = {}
        for kind, ids in selection.items():
            values = validate_ids(kind, ids)
            if not values:
                continue
            if kind in ("sites", "buildings"):
                for sub_kind, sub_ids in self.assets_in(values).items():
                    resolved.setdefault(sub_kind, []).extend(sub_ids)
            else:
                resolved.setdefault(kind, []).extend(values)
        return {kind: list(dict.fromkeys(ids)) for kind, ids in resolved.items() if ids}

    def group_by_timezone(self, assets: Mapping[str, Sequence[str]]) -> dict[str, dict[str, list[str]]]:
        """``{timezone: {kind: ids}}`` so that each export runs in its sites' local time."""
        groups: dict[str, dict[str, list[str]]] = {}
        for kind, ids in assets.items():
            for asset_id in ids:
                groups.setdefault(self.timezone_of(asset_id), {}).setdefault(kind, []).append(asset_id)
        return dict(sorted(groups.items()))

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Flat dimension tables (sites, buildings, floors, rooms, zones) for a warehouse sync."""
        sites = [
            {
                "id": s["id"],
                "name": s.get("name"),
                "timezone": s.get("timezone"),
                "custom_id": s.get("customID"),
            }
            for s in self.sites
        ]
        buildings = [
            {"id": b["id"], "name": b.get("name"), "site_id": b["site_id"], "custom_id": b.get("customID")}
            for b in self.buildings.values()
        ]
        tables: dict[str, list[dict[str, Any]]] = {"sites": sites, "buildings": buildings}
        for kind in ("floors", "rooms", "zones"):
            tables[kind] = [
                {
                    "id": a.id,
                    "name": a.name,
                    "site_id": a.site_id,
                    "building_id": a.building_id,
                    "floor_id": a.floor_id,
                    "custom_id": a.custom_id,
                    "capacity_max": a.capacity_max,
                    "timezone": self.site_by_id[a.site_id].get("timezone") or "UTC",
                    "tag_ids": list(a.tag_ids),
                }
                for a in self.assets.values()
                if a.kind == kind
            ]
        return tables


# --- device health -----------------------------------------------------------------------------


def is_placeholder_sensor(sensor: Mapping[str, Any]) -> bool:
    """Test/mirror devices (MAC ``mi-rr-or...``, ``fa-ke...``, ``fake...`` or empty) still send data."""
    mac = str(sensor.get("mac_address") or "").strip().lower()
    return not mac or mac.startswith(PLACEHOLDER_MAC_PREFIXES)


def is_placeholder_hive(hive: Mapping[str, Any]) -> bool:
    serial = str(hive.get("serialNumber") or hive.get("serial_number") or "").strip().lower()
    return not serial or serial.startswith(PLACEHOLDER_SERIAL_PREFIXES)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_iso_utc(value)
    except ValueError:
        return None


def hours_since(heartbeat: Any, now: datetime) -> float | None:
    """Hours since a Unix-seconds heartbeat (None when absent)."""
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)):
        return None
    return round((now.timestamp() - float(heartbeat)) / 3600.0, 2)


def battery_status(
    sensor: Mapping[str, Any], now: datetime, due_soon_days: int = DEFAULT_DUE_SOON_DAYS
) -> str:
    """Butlr's rule: Wired -> wired; no change-by date -> unknown; past -> critical; <= N days -> due_soon."""
    if str(sensor.get("power_type") or "").strip().lower() == "wired":
        return "wired"
    due = _parse_time(sensor.get("battery_change_by_date"))
    if due is None:
        return "unknown"
    if due <= now:
        return "critical"
    if (due - now).total_seconds() <= due_soon_days * 86400:
        return "due_soon"
    return "healthy"


def _heartbeat_iso(heartbeat: Any) -> str | None:
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)):
        return None
    return format_time(datetime.fromtimestamp(float(heartbeat), tz=UTC))


def _offline(online: Any, age_hours: float | None, offline_after_hours: float | None) -> bool:
    if not online:
        return True
    return offline_after_hours is not None and age_hours is not None and age_hours > offline_after_hours


def device_health_report(
    sensors: Iterable[Mapping[str, Any]],
    hives: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    floor_ids: Iterable[str] | None = None,
    offline_after_hours: float | None = None,
    due_soon_days: int = DEFAULT_DUE_SOON_DAYS,
) -> dict[str, Any]:
    """Offline sensors/hives (with hours since ``last_heartbeat``) and battery status, placeholders excluded.

    A device is offline when its online flag is false, or when ``offline_after_hours`` is set and
    its last heartbeat is older than that. JSON-serialisable.
    """
    floors = set(floor_ids) if floor_ids is not None else None
    scoped_sensors = [s for s in sensors if floors is None or s.get("floor_id") in floors]
    scoped_hives = [h for h in hives if floors is None or h.get("floor_id") in floors]
    real_sensors = [s for s in scoped_sensors if not is_placeholder_sensor(s)]
    real_hives = [h for h in scoped_hives if not is_placeholder_hive(h)]

    offline_sensors = []
    batteries: dict[str, list[dict[str, Any]]] = {status: [] for status in BATTERY_STATUSES}
    for sensor in real_sensors:
        age = hours_since(sensor.get("last_heartbeat"), now)
        if _offline(sensor.get("is_online"), age, offline_after_hours):
            offline_sensors.append(
                {
                    "id": sensor.get("id"),
                    "name": sensor.get("name"),
                    "mac_address": sensor.get("mac_address"),
                    "floor_id": sensor.get("floor_id"),
                    "room_id": sensor.get("room_id"),
                    "last_heartbeat": _heartbeat_iso(sensor.get("last_heartbeat")),
                    "hours_since_heartbeat": age,
                }
            )
        status = battery_status(sensor, now, due_soon_days)
        batteries[status].append(
            {
                "id": sensor.get("id"),
                "name": sensor.get("name"),
                "battery_change_by_date": sensor.get("battery_change_by_date"),
            }
        )
    offline_hives = []
    for hive in real_hives:
        age = hours_since(hive.get("lastHeartbeat"), now)
        if _offline(hive.get("isOnline"), age, offline_after_hours):
            offline_hives.append(
                {
                    "id": hive.get("id"),
                    "name": hive.get("name"),
                    "serial_number": hive.get("serialNumber"),
                    "floor_id": hive.get("floor_id"),
                    "last_heartbeat": _heartbeat_iso(hive.get("lastHeartbeat")),
                    "hours_since_heartbeat": age,
                }
            )
    key = _offline_sort_key
    return {
        "checked_at": format_time(now),
        "sensors": _counts(len(real_sensors), len(offline_sensors), len(scoped_sensors) - len(real_sensors)),
        "hives": _counts(len(real_hives), len(offline_hives), len(scoped_hives) - len(real_hives)),
        "offline_sensors": sorted(offline_sensors, key=key),
        "offline_hives": sorted(offline_hives, key=key),
        "battery": {status: len(items) for status, items in batteries.items()},
        "critical_batteries": sorted(batteries["critical"], key=lambda d: str(d["id"])),
        "due_soon_batteries": sorted(batteries["due_soon"], key=lambda d: str(d["id"])),
    }


def _offline_sort_key(device: Mapping[str, Any]) -> tuple[float, str]:
    age = device.get("hours_since_heartbeat")
    return (-(age if isinstance(age, (int, float)) else float("inf")), str(device.get("id")))


def _counts(total: int, offline: int, placeholders: int) -> dict[str, Any]:
    return {
        "total": total,
        "online": total - offline,
        "offline": offline,
        "offline_share": round(offline / total, 4) if total else 0.0,
        "placeholders_excluded": placeholders,
    }
