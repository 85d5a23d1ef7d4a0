"""The organisation's topology (sites -> buildings -> floors -> rooms/zones) from GraphQL, as lookups.

Queries select snake_case fields only: the camelCase ``floorID``/``roomID`` resolvers on sensors
error for sensors without a room (Butlr API reference 4.5).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.reporting.validation import validate_ids

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


TAGS_QUERY = """
query ButlrTags { tags { id name organization_id rooms { id name } zones { id name } floors { id name } } }
""".strip()


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
