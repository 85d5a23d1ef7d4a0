"""Webhook events from the ground truth (butlr-api.md §5): entities, payloads, filters, Butlr's untidiness.

Every completed minute, each active subscription gets one event per entity of its event types (after its
``filters``), valued from the same minute series the Reporting API aggregates (``timeseries/series.py``):

* ``ROOM_/ZONE_/FLOOR_OCCUPANCY_1MIN``: the minute's occupancy, minute-aligned ``timestamp``. Butlr
  recomputes occupancy every minute over a rolling ~5-minute look-back, so a minute is first sent with a
  provisional value and re-sent (a new event id) whenever a later recomputation changes it; the last
  send, at most ``webhook_lookback_minutes - 1`` minutes later, carries the final value (= the Reporting
  API's value of that minute). ``webhook_revision_rate`` is the chance that a provisional value is off by one.
* ``ROOM_/ZONE_/FLOOR_OCCUPANCY``: the same value once per minute, at a (seeded) instant inside the minute.
* ``TRAFFIC``: per traffic sensor, ``{"in": n, "out": m}`` of a minute with at least one crossing.

``send_on_value_change`` drops an event whose ``data`` equals the last one sent for that entity. With
``webhook_duplicate_rate`` an event is POSTed twice (same id); with ``webhook_shuffle`` the events of one
minute go out in a seeded random order (a minute's events never overtake an earlier minute's, so "keep the
latest per (entity, timestamp)" stays right; retries can still reorder).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_butlr.testing.org.model import Floor, Organization, Room, Sensor, Zone
from airflow_provider_butlr.testing.timeseries.series import (
    FLOOR_OCCUPANCY,
    ROOM_OCCUPANCY,
    TRAFFIC,
    ZONE_OCCUPANCY,
    SeriesSource,
    series_source,
)
from airflow_provider_butlr.testing.timeseries.timeutils import MINUTE

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
EVENT_VERSION = "v1.0.0"
# Delivered event type -> (entity kind, ground-truth measurement, minute-aligned 1-minute rollup).
DELIVERED_TYPES: Mapping[str, tuple[str, str, bool]] = {
    "ROOM_OCCUPANCY_1MIN": ("room", ROOM_OCCUPANCY, True),
    "ZONE_OCCUPANCY_1MIN": ("zone", ZONE_OCCUPANCY, True),
    "FLOOR_OCCUPANCY_1MIN": ("floor", FLOOR_OCCUPANCY, True),
    "ROOM_OCCUPANCY": ("room", ROOM_OCCUPANCY, False),
    "ZONE_OCCUPANCY": ("zone", ZONE_OCCUPANCY, False),
    "FLOOR_OCCUPANCY": ("floor", FLOOR_OCCUPANCY, False),
    "TRAFFIC": ("sensor", TRAFFIC, False),
}
FILTER_KEYS = ("org_ids", "site_ids", "building_ids", "floor_ids", "room_ids", "zone_ids", "mac_addresses")
Data = int | dict[str, int]


@dataclass(frozen=True)
class Entity:
    """One asset an event type reports on: its payload metadata and what its filters match."""

    asset_id: str
    metadata: Mapping[str, str]
    match: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Event:
    """One POST to plan: the payload and where it came from (``revision`` 0 = first send of the minute)."""

    payload: Mapping[str, Any]
    event_type: str
    asset_id: str
    minute: int
    revision: int = 0
    duplicate: bool = False


@dataclass(frozen=True)
class Untidiness:
    """Butlr's documented untidiness, as switched in the config (``webhook_*`` fields)."""

    lookback_minutes: int = 5
    revision_rate: float = 0.0
    duplicate_rate: float = 0.0
    shuffle: bool = False


def filter_problem(filters: Any) -> str | None:
    """Why a webhook's ``filters`` JSON is unusable (None when fine): arrays of strings under known keys."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        return f"filters must be a JSON object with keys from: {', '.join(FILTER_KEYS)}"
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        return f"filters: unknown key(s) {unknown}; allowed: {', '.join(FILTER_KEYS)}"
    for key, values in filters.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return f"filters.{key} must be a list of strings"
    return None


def _hash(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:24], "big")


def event_id(*parts: object) -> str:
    """``event_`` + 27 base62 characters, deterministic for the same parts (seed, type, asset, minute, age)."""
    number, chars = _hash("event", *parts), []
    for _ in range(26):
        number, digit = divmod(number, 62)
        chars.append(BASE62[digit])
    return "event_2" + "".join(chars)


def provisional(
    seed: int, event_type: str, asset_id: str, minute: int, age: int, truth: int, u: Untidiness
) -> int:
    """The value a recomputation ``age`` minutes after ``minute`` sends (final, = truth, at the look-back end)."""
    if age >= u.lookback_minutes - 1 or u.revision_rate <= 0:
        return truth
    draw = (_hash(seed, event_type, asset_id, minute, age) % 1_000_000) / 1_000_000
    if draw >= u.revision_rate:
        return truth
    return truth + 1 if truth == 0 or draw < u.revision_rate / 2 else truth - 1


class EventCatalog:
    """The entities of every delivered event type in one organisation, and their minute values."""

    def __init__(self, org: Organization, seed: int) -> None:
        self.org = org
        self.seed = seed
        self.source: SeriesSource = series_source(org, seed)
        self._entities: dict[str, list[Entity]] = {}

    def entities(self, kind: str, measurement: str) -> list[Entity]:
        """The assets with ``measurement`` data, in organisation order (built once)."""
        if kind not in self._entities:
            ids, org = self.source.assets(measurement), self.org
            if kind == "room":
                built = [self._room(org.rooms_by_id[i]) for i in ids]
            elif kind == "zone":
                built = [self._zone(org.zones_by_id[i]) for i in ids]
            elif kind == "floor":
                built = [self._floor(org.floors_by_id[i]) for i in ids]
            else:
                built = [self._sensor(org.sensors_by_id[i]) for i in ids]
            self._entities[kind] = built
        return self._entities[kind]

    # --- metadata (butlr-api.md §5.3: ids, custom ids when set, names) ---------------------------------
    def _base(self, floor: Floor) -> tuple[dict[str, str], dict[str, str], dict[str, frozenset[str]]]:
        site = self.org.sites_by_id[floor.site_id]
        building = self.org.buildings_by_id[floor.building_id]
        ids = {"org_id": self.org.id, "site_id": site.id, "building_id": building.id, "floor_id": floor.id}
        names = {
            "org_name": self.org.name,
            "site_name": site.name,
            "building_name": building.name,
            "floor_name": floor.name,
        }
        match = {
            "org_ids": frozenset({self.org.id}),
            "site_ids": frozenset({site.id}),
            "building_ids": frozenset({building.id}),
            "floor_ids": frozenset({floor.id}),
        }
        return ids, names, match

    def _macs(self, sensors: Iterable[Sensor]) -> frozenset[str]:
        return frozenset(s.mac_address for s in sensors if s.mac_address)

    def _entity(
        self,
        asset_id: str,
        floor: Floor,
        room: Room | None,
        zone: Zone | None,
        extra: Mapping[str, str],
        macs: frozenset[str],
    ) -> Entity:
        ids, names, match = self._base(floor)
        custom: dict[str, str] = {}
        if floor.custom_id:
            custom["floor_custom_id"] = floor.custom_id
        if room is not None:
            ids["room_id"], names["room_name"] = room.id, room.name
            match["room_ids"] = frozenset({room.id})
            if room.custom_id:
                custom["room_custom_id"] = room.custom_id
        if zone is not None:
            ids["zone_id"], names["zone_name"] = zone.id, zone.name
            match["zone_ids"] = frozenset({zone.id})
            if zone.custom_id:
                custom["zone_custom_id"] = zone.custom_id
        match["mac_addresses"] = macs
        return Entity(asset_id, {**ids, **custom, **names, **extra}, match)

    def _room(self, room: Room) -> Entity:
        floor = self.org.floors_by_id[room.floor_id]
        sensors = [s for s in floor.sensors or [] if s.room_id == room.id]
        return self._entity(room.id, floor, room, None, {}, self._macs(sensors))

    def _zone(self, zone: Zone) -> Entity:
        floor = self.org.floors_by_id[zone.floor_id]
        room = self.org.rooms_by_id.get(zone.room_id or "")
        sensors = [s for s in floor.sensors or [] if zone.id in s.zone_ids]
        return self._entity(zone.id, floor, room, zone, {}, self._macs(sensors))

    def _floor(self, floor: Floor) -> Entity:
        return self._entity(floor.id, floor, None, None, {}, self._macs(floor.sensors or []))

    def _sensor(self, sensor: Sensor) -> Entity:
        floor = self.org.floors_by_id[sensor.floor_id or ""]
        room = self.org.rooms_by_id.get(sensor.room_id or "")
        extra = {"sensor_id": sensor.id, "mac_address": sensor.mac_address}  # [GUESS]: not in the docs' list
        return self._entity(sensor.id, floor, room, None, extra, self._macs([sensor]))

    # --- values ------------------------------------------------------------------------------------
    def values(self, measurement: str, asset_id: str, first_minute: int, count: int) -> list[Data]:
        if measurement == TRAFFIC:
            ins = self.source.values(TRAFFIC, asset_id, first_minute, count, "in")
            outs = self.source.values(TRAFFIC, asset_id, first_minute, count, "out")
            return [{"in": a, "out": b} for a, b in zip(ins, outs, strict=True)]
        return list(self.source.values(measurement, asset_id, first_minute, count))


def matches(entity: Entity, filters: Mapping[str, list[str]] | None) -> bool:
    """AND across filter keys, OR within one key's list (an entity without that kind of id fails the key)."""
    return all(entity.match.get(key, frozenset()) & set(values) for key, values in (filters or {}).items())


@dataclass
class SubscriptionState:
    """What one subscription's stream remembers between minutes."""

    next_minute: int  # the first minute not yet emitted
    start_minute: int  # minutes before this are never (re-)sent
    last_data: dict[tuple[str, str], Data] = field(default_factory=dict)
    skipped_minutes: int = 0


def plan_minute(
    catalog: EventCatalog, hook: Mapping[str, Any], minute: int, state: SubscriptionState, u: Untidiness
) -> list[Event]:
    """The events of one completed ``minute`` for one subscription, in sending order."""
    events: list[Event] = []
    on_change = bool(hook.get("send_on_value_change"))
    for event_type in hook["event_types"]:
        if event_type not in DELIVERED_TYPES:
            continue
        kind, measurement, rollup = DELIVERED_TYPES[event_type]
        look = max(1, u.lookback_minutes) if rollup else 1
        first = max(state.start_minute, minute - look + 1)
        for entity in catalog.entities(kind, measurement):
            if not matches(entity, hook.get("filters")):
                continue
            truth = catalog.values(measurement, entity.asset_id, first, minute - first + 1)
            for sent_minute, age, data in _sends(
                catalog.seed, event_type, entity, first, minute, truth, rollup, u
            ):
                key = (event_type, entity.asset_id)
                if on_change and state.last_data.get(key) == data:
                    continue
                state.last_data[key] = data
                payload = _payload(catalog.seed, event_type, entity, sent_minute, age, data, rollup)
                events.append(Event(payload, event_type, entity.asset_id, sent_minute, age))
    return _untidy(events, random.Random(_hash(catalog.seed, hook["id"], minute)), u)


def _sends(
    seed: int,
    event_type: str,
    entity: Entity,
    first: int,
    minute: int,
    truth: list[Data],
    rollup: bool,
    u: Untidiness,
) -> list[tuple[int, int, Data]]:
    """(minute, age, data) to send now: revisions of earlier minutes (oldest first), then the new minute."""
    if not rollup:
        data = truth[-1]
        if isinstance(data, dict) and not (data["in"] or data["out"]):
            return []  # TRAFFIC reports crossings; a minute without any sends nothing
        return [(minute, 0, data)]
    sends: list[tuple[int, int, Data]] = []
    for m in range(first, minute):
        age = minute - m
        value = int(truth[m - first])  # type: ignore[arg-type]
        now = provisional(seed, event_type, entity.asset_id, m, age, value, u)
        before = provisional(seed, event_type, entity.asset_id, m, age - 1, value, u)
        if now != before:
            sends.append((m, age, now))
    newest = int(truth[-1])  # type: ignore[arg-type]
    sends.append((minute, 0, provisional(seed, event_type, entity.asset_id, minute, 0, newest, u)))
    return sends


def _payload(
    seed: int, event_type: str, entity: Entity, minute: int, age: int, data: Data, rollup: bool
) -> dict[str, Any]:
    timestamp = minute * MINUTE * 1000
    if not rollup:  # real-time events happen inside the minute, not on its boundary
        timestamp += _hash(seed, "instant", event_type, entity.asset_id, minute) % 60_000
    return {
        "id": event_id(seed, event_type, entity.asset_id, minute, age),
        "type": event_type,
        "timestamp": timestamp,
        "version": EVENT_VERSION,
        "metadata": dict(entity.metadata),
        "data": data,
    }


def _untidy(events: list[Event], rng: random.Random, u: Untidiness) -> list[Event]:
    out: list[Event] = []
    for event in events:
        out.append(event)
        if u.duplicate_rate > 0 and rng.random() < u.duplicate_rate:
            out.append(
                Event(event.payload, event.event_type, event.asset_id, event.minute, event.revision, True)
            )
    if u.shuffle:
        rng.shuffle(out)
    return out
