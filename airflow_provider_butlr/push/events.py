"""Butlr's webhook events: the event-type catalogue and one delivered payload, validated (pure).

The envelope is butlr-api.md §5.3: ``id``, ``type``, ``timestamp`` (epoch milliseconds), ``version``,
``metadata`` (org / site / building / floor ids and names, room and zone ones where they apply,
``*_custom_id`` when set) and ``data`` (an integer for occupancy, ``{"in", "out"}`` for ``TRAFFIC``).
:func:`parse_event` turns a decoded body into a :class:`WebhookEvent` or raises
:class:`WebhookRejected` with the HTTP status the receiver answers; nothing of a refused body is kept.

What each event becomes (:data:`EVENT_TYPES`):

* ``ROOM_/ZONE_/FLOOR_OCCUPANCY_1MIN``: the minute's smoothed occupancy of a room, zone or floor; the
  stream ``occupancy`` of that asset, and the input of the state conditions ("room empty");
* ``ROOM_/ZONE_/FLOOR_OCCUPANCY``: real-time occupancy; the stream ``occupancy_realtime``;
* ``TRAFFIC``: one traffic sensor's crossings in a minute; the stream ``traffic`` of its room (of its
  floor when the sensor has no room), deduplicated per sensor;
* the other documented types (``DETECTIONS``, ``PIR_*``, ``*_HEALTH``) are accepted and not recorded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_butlr.reporting.times import format_instant

MINUTE_MS = 60_000
# Inclusive bounds of a believable event time: Butlr's webhooks exist since 2024; a day of clock skew.
EARLIEST_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
FUTURE_SKEW_MS = 86_400_000
MAX_OCCUPANCY = 1_000_000
MAX_TEXT = 256
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
MAC_PATTERN = re.compile(r"^[0-9A-Fa-f]{2}([-:][0-9A-Fa-f]{2}){5,7}$")

ID_KEYS = ("org_id", "site_id", "building_id", "floor_id", "room_id", "zone_id", "sensor_id")
NAME_KEYS = ("org_name", "site_name", "building_name", "floor_name", "room_name", "zone_name")
CUSTOM_ID_KEYS = ("floor_custom_id", "room_custom_id", "zone_custom_id")


@dataclass(frozen=True)
class EventType:
    """What one event type is about: the asset kind, the entity's metadata key and the stream."""

    kind: str | None  # "rooms", "zones", "floors" (asset URI kind); None: accepted, not recorded
    entity_key: str | None  # the metadata key of the entity the event is about
    stream: str | None  # the asset state this stream records ("occupancy", "occupancy_realtime", "traffic")
    minute_aligned: bool = False  # a 1-minute rollup: the timestamp is the minute's start
    traffic: bool = False


EVENT_TYPES: dict[str, EventType] = {
    "ROOM_OCCUPANCY_1MIN": EventType("rooms", "room_id", "occupancy", minute_aligned=True),
    "ZONE_OCCUPANCY_1MIN": EventType("zones", "zone_id", "occupancy", minute_aligned=True),
    "FLOOR_OCCUPANCY_1MIN": EventType("floors", "floor_id", "occupancy", minute_aligned=True),
    "ROOM_OCCUPANCY": EventType("rooms", "room_id", "occupancy_realtime"),
    "ZONE_OCCUPANCY": EventType("zones", "zone_id", "occupancy_realtime"),
    "FLOOR_OCCUPANCY": EventType("floors", "floor_id", "occupancy_realtime"),
    "TRAFFIC": EventType("rooms", "room_id", "traffic", traffic=True),
    "DETECTIONS": EventType(None, None, None),
    "PIR_MOTION": EventType(None, None, None),
    "PIR_NO_MOTION": EventType(None, None, None),
    "SENSOR_HEALTH": EventType(None, None, None),
    "HIVE_HEALTH": EventType(None, None, None),
}
STREAMS = ("occupancy", "occupancy_realtime", "traffic")


class WebhookRejected(Exception):
    """A request the receiver refuses: ``status`` is the HTTP answer, the message names the field
    (never a value from the body beyond a known event type or id)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class WebhookEvent:
    """One accepted event: who it is about, when, and its value."""

    event_id: str
    event_type: str
    timestamp_ms: int  # the minute's start for the 1-minute rollups
    org_id: str
    kind: str | None  # asset kind of the asset URIs ("rooms", "zones", "floors"); None: not recorded
    asset_id: str | None  # the room / zone / floor the event's assets belong to
    entity_id: str | None  # what deduplication is keyed on: the asset, or the sensor for TRAFFIC
    metadata: Mapping[str, str]
    data: Any  # int (occupancy) or {"in": int, "out": int} (TRAFFIC); None when not recorded

    @property
    def spec(self) -> EventType:
        return EVENT_TYPES[self.event_type]

    @property
    def recorded(self) -> bool:
        return self.kind is not None and self.asset_id is not None

    @property
    def stream_key(self) -> str:
        """The key of this event's deduplication stream: event type and entity."""
        return f"{self.event_type}:{self.entity_id}"

    def summary(self) -> dict[str, Any]:
        """JSON for an asset event's extra: ids, names, value, time (only allow-listed metadata)."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "kind": self.kind,
            "asset_id": self.asset_id,
            "timestamp": format_instant(self.timestamp_ms / 1000),
            "timestamp_ms": self.timestamp_ms,
            "value": self.data,
            "metadata": dict(self.metadata),
        }


def parse_event(body: Any, *, org_id: str, now_ms: int) -> WebhookEvent:
    """The event in a decoded JSON body, checked against the documented shape and the organisation.

    Raises :class:`WebhookRejected`: 422 for a body that is not an event (unknown type, missing or
    ill-typed field), 403 for an event of another organisation than ``org_id``.
    """
    if not isinstance(body, dict):
        raise WebhookRejected(422, "the body must be one JSON object (a Butlr webhook event)")
    event_type = body.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        shown = event_type if isinstance(event_type, str) and ID_PATTERN.match(event_type) else "?"
        raise WebhookRejected(422, f"unknown event type {shown!r}; known: {', '.join(EVENT_TYPES)}")
    spec = EVENT_TYPES[event_type]
    event_id = _identifier(body.get("id"), "id")
    version = body.get("version")
    if version is not None and (not isinstance(version, str) or not version.startswith("v1.")):
        raise WebhookRejected(422, "version: only v1.x events are understood")
    timestamp = body.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise WebhookRejected(422, "timestamp must be an integer (epoch milliseconds)")
    if not EARLIEST_MS <= timestamp <= now_ms + FUTURE_SKEW_MS:
        raise WebhookRejected(422, "timestamp is out of range (epoch milliseconds, not in the future)")
    if spec.minute_aligned:
        timestamp -= timestamp % MINUTE_MS
    metadata = _metadata(body.get("metadata"))
    if metadata.get("org_id") is None:
        raise WebhookRejected(422, "metadata.org_id is required")
    if metadata["org_id"] != org_id:
        raise WebhookRejected(403, "the event belongs to another organisation than the receiver's")
    kind, asset_id, entity_id = spec.kind, None, None
    data: Any = None
    if spec.kind is not None and spec.entity_key is not None:
        asset_id = metadata.get(spec.entity_key)
        if spec.traffic:
            if asset_id is None:  # a traffic sensor without a room counts for its floor
                kind, asset_id = "floors", metadata.get("floor_id")
            entity_id = metadata.get("sensor_id") or metadata.get("mac_address") or asset_id
            data = _traffic(body.get("data"))
        else:
            entity_id = asset_id
            data = _count(body.get("data"))
        if asset_id is None:
            raise WebhookRejected(422, f"metadata.{spec.entity_key} is required for {event_type}")
    return WebhookEvent(
        event_id, event_type, timestamp, metadata["org_id"], kind, asset_id, entity_id, metadata, data
    )


def _identifier(value: Any, name: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise WebhookRejected(
            422, f"{name} must be a Butlr id (letters, digits, '_', at most 100 characters)"
        )
    return value


def _metadata(value: Any) -> dict[str, str]:
    """The allow-listed metadata: ids checked as ids, names and custom ids as short texts."""
    if not isinstance(value, dict):
        raise WebhookRejected(422, "metadata must be a JSON object")
    kept: dict[str, str] = {}
    for key in ID_KEYS:
        if value.get(key) is not None:
            kept[key] = _identifier(value[key], f"metadata.{key}")
    mac = value.get("mac_address")
    if mac is not None:
        if not isinstance(mac, str) or not MAC_PATTERN.match(mac):
            raise WebhookRejected(422, "metadata.mac_address must be a MAC address")
        kept["mac_address"] = mac
    for key in (*NAME_KEYS, *CUSTOM_ID_KEYS):
        text = value.get(key)
        if text is None:
            continue
        if not isinstance(text, str) or len(text) > MAX_TEXT or not text.isprintable():
            raise WebhookRejected(
                422, f"metadata.{key} must be a printable text of at most {MAX_TEXT} characters"
            )
        kept[key] = text
    return kept


def _count(value: Any, name: str = "data") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OCCUPANCY:
        raise WebhookRejected(422, f"{name} must be a whole number (0 or more)")
    return value


def _traffic(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or set(value) - {"in", "out"}:
        raise WebhookRejected(422, 'data must be {"in": n, "out": m} for TRAFFIC events')
    return {"in": _count(value.get("in", 0), "data.in"), "out": _count(value.get("out", 0), "data.out")}
