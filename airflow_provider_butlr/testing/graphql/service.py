"""GraphQL over HTTP for the emulator: graphql-core schema, resolvers over the seeded org, webhooks."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    execute_sync,
    parse,
    validate,
)

from airflow_provider_butlr.testing.graphql.sdl import SCHEMA_SDL
from airflow_provider_butlr.testing.graphql.webhooks import WebhookStore
from airflow_provider_butlr.testing.org.model import Hive, Organization, Sensor, Tag

T = TypeVar("T")
Resolver = Callable[..., Any]

# GraphQL field -> model attribute, for the camelCase (and renamed) fields of the real schema.
ALIASES: dict[str, dict[str, str]] = {
    "Site": {"siteNumber": "site_number", "customID": "custom_id", "butlrCode": "butlr_code"},
    "Building": {"customID": "custom_id", "buildingNumber": "building_number"},
    "Floor": {"floorNumber": "floor_number", "customID": "custom_id"},
    "Room": {"floorID": "floor_id", "roomType": "room_type", "customID": "custom_id"},
    # Zone.floorID/roomID are plain legacy twins: null-safe, unlike Sensor's (butlr-api.md §11).
    "Zone": {"customID": "custom_id", "floorID": "floor_id", "roomID": "room_id"},
    "Sensor": {"sensor_id": "id"},
    "Hive": {
        "serialNumber": "serial_number",
        "floorID": "floor_id",
        "roomID": "room_id",
        "hiveVersion": "hive_version",
        "hiveType": "hive_type",
        "isOnline": "is_online",
        "isStreaming": "is_streaming",
        "lastHeartbeat": "last_heartbeat",
        "netPathStability": "net_path_stability",
    },
}
# Constant answers for fields the seeded model does not carry.
CONSTANTS: dict[str, dict[str, Any]] = {
    "Floor": {"installation_status": "INSTALLED", "service_status": "ACTIVE"},
    "Room": {"pir_zero_enable": False, "pir_zero_threshold": 0.05, "pir_zero_window": 300},
}
DOCUMENT_CACHE_SIZE = 512


def _error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def _attribute(name: str) -> Resolver:
    return lambda obj, _info, **_: getattr(obj, name)


def _constant(value: Any) -> Resolver:
    return lambda _obj, _info, **_: value


def _pick(items: Iterable[T], ids: list[str] | None) -> list[T]:
    """Items in model order, restricted to ``ids`` when given."""
    if ids is None:
        return list(items)
    wanted = set(ids)
    return [item for item in items if getattr(item, "id", None) in wanted]


def _camel_id(attribute: str, what: str) -> Resolver:
    """The legacy ``floorID``/``roomID``/``hiveID`` resolvers: an error for NULL values (partial data)."""

    def resolve(sensor: Sensor, info: GraphQLResolveInfo) -> str:
        value = getattr(sensor, attribute)
        if value is None:
            raise _error(
                f"sensor {sensor.id} has no {what} (resolver {info.field_name} returned NULL)", "NOT_FOUND"
            )
        return str(value)

    return resolve


class OrgIndex:
    """Reverse indexes over the (static) organisation for nested resolvers."""

    def __init__(self, org: Organization) -> None:
        self.org = org
        self.sensors = [s for f in org.floors_by_id.values() for s in (f.sensors or [])]
        self.hives = [h for f in org.floors_by_id.values() for h in f.hives]
        self.sensors_by_room: dict[str, list[Sensor]] = {}
        self.sensors_by_zone: dict[str, list[Sensor]] = {}
        self.sensors_by_hive: dict[str, list[Sensor]] = {}
        for sensor in self.sensors:
            if sensor.room_id:
                self.sensors_by_room.setdefault(sensor.room_id, []).append(sensor)
            for zone_id in sensor.zone_ids:
                self.sensors_by_zone.setdefault(zone_id, []).append(sensor)
            if sensor.hive_id:
                self.sensors_by_hive.setdefault(sensor.hive_id, []).append(sensor)

    def tags(self, tag_ids: list[str]) -> list[Tag]:
        return [self.org.tags_by_id[t] for t in tag_ids if t in self.org.tags_by_id]

    def by_tags(self, attribute: str, tag_ids: list[str], use_or: bool) -> set[str]:
        """Ids tagged with all (AND, the default) or any (``useOR``) of ``tag_ids``."""
        sets = [set(getattr(self.org.tags_by_id[t], attribute)) for t in tag_ids if t in self.org.tags_by_id]
        if len(sets) < len(set(tag_ids)) and not use_or:
            return set()
        if not sets:
            return set()
        return set.union(*sets) if use_or else set.intersection(*sets)


def _single(lookup: Callable[[OrgIndex], dict[str, T]], kind: str) -> Resolver:
    """``site(id, customID)``-style root fields: ``null`` when nothing matches (a NOT_FOUND error instead
    with ``graphql_unknown_id_mode="error"``; docs/emulator.md has the evidence for both)."""

    def resolve(
        _root: Any, info: GraphQLResolveInfo, id: str | None = None, customID: str | None = None
    ) -> T | None:
        if id is None and customID is None:
            raise _error(f"{kind}: give id or customID", "BAD_USER_INPUT")
        items = lookup(info.context["index"])
        found = items.get(id) if id is not None else None
        if found is None and customID is not None:
            found = next((x for x in items.values() if getattr(x, "custom_id", None) == customID), None)
        if found is None and info.context.get("unknown_id_mode") == "error":
            raise _error(f"{kind} not found: {id if id is not None else customID}", "NOT_FOUND")
        return found

    return resolve


def _listing(lookup: Callable[[OrgIndex], Iterable[Any]]) -> Resolver:
    """``floors(ids)``-style root fields returning ``{data: [...]}``."""

    def resolve(_root: Any, info: GraphQLResolveInfo, ids: list[str] | None = None) -> dict[str, Any]:
        return {"data": _pick(lookup(info.context["index"]), ids)}

    return resolve


def _by_tag(lookup: Callable[[OrgIndex], Iterable[Any]], attribute: str) -> Resolver:
    def resolve(
        _root: Any, info: GraphQLResolveInfo, tagIDs: list[str], useOR: bool | None = False
    ) -> dict[str, Any]:
        index: OrgIndex = info.context["index"]
        unknown = [t for t in tagIDs if t not in index.org.tags_by_id]
        if unknown and not useOR:
            raise _error(
                f"unknown tag ids: {', '.join(unknown)} (tagIDs takes tag ids, not names)", "NOT_FOUND"
            )
        wanted = index.by_tags(attribute, tagIDs, bool(useOR))
        return {"data": [x for x in lookup(index) if x.id in wanted]}

    return resolve


def _hives(
    _root: Any,
    info: GraphQLResolveInfo,
    ids: list[str] | None = None,
    serial_numbers: list[str] | None = None,
    returnPlaceholders: bool | None = False,
) -> dict[str, Any]:
    hives: list[Hive] = _pick(info.context["index"].hives, ids)
    if serial_numbers is not None:
        serials = {s.lower() for s in serial_numbers}
        hives = [h for h in hives if h.serial_number.lower() in serials]
    if not returnPlaceholders:
        hives = [h for h in hives if not h.is_placeholder]
    return {"data": hives}


def _sensors(
    _root: Any,
    info: GraphQLResolveInfo,
    ids: list[str] | None = None,
    mac_addresses: list[str] | None = None,
    **_ignored: Any,
) -> dict[str, Any]:
    sensors: list[Sensor] = _pick(info.context["index"].sensors, ids)
    if mac_addresses is not None:
        macs = {m.lower() for m in mac_addresses}
        sensors = [s for s in sensors if s.mac_address.lower() in macs]
    return {"data": sensors}


def _root_resolvers() -> dict[str, Resolver]:
    org = lambda ix: ix.org  # noqa: E731
    return {
        "sites": lambda _r, info: {"data": info.context["index"].org.sites},
        "site": _single(lambda ix: org(ix).sites_by_id, "site"),
        "buildings": _listing(lambda ix: org(ix).buildings_by_id.values()),
        "building": _single(lambda ix: org(ix).buildings_by_id, "building"),
        "floors": _listing(lambda ix: org(ix).floors_by_id.values()),
        "floor": _single(lambda ix: org(ix).floors_by_id, "floor"),
        "rooms": _listing(lambda ix: org(ix).rooms_by_id.values()),
        "room": _single(lambda ix: org(ix).rooms_by_id, "room"),
        "zones": _listing(lambda ix: org(ix).zones_by_id.values()),
        "zone": _single(lambda ix: org(ix).zones_by_id, "zone"),
        "hives": _hives,
        "sensors": _sensors,
        "tags": lambda _r, info, ids=None: _pick(info.context["index"].org.tags, ids),
        "floorsByTag": _by_tag(lambda ix: org(ix).floors_by_id.values(), "floor_ids"),
        "roomsByTag": _by_tag(lambda ix: org(ix).rooms_by_id.values(), "room_ids"),
        "zonesByTag": _by_tag(lambda ix: org(ix).zones_by_id.values(), "zone_ids"),
        "webhooks": lambda _r, info: info.context["webhooks"].all(),
    }


def _nested_resolvers() -> dict[str, dict[str, Resolver]]:
    ix = lambda info: info.context["index"]  # noqa: E731
    return {
        "Building": {
            "site": lambda b, info: ix(info).org.sites_by_id.get(b.site_id),
            "address": lambda b, _info: {"lines": b.address_lines, "country": b.country},
            "butlr_code": lambda b, info: ix(info).org.sites_by_id[b.site_id].butlr_code,
        },
        "Floor": {
            "building": lambda f, info: ix(info).org.buildings_by_id.get(f.building_id),
            "rooms": lambda f, _info, ids=None: _pick(f.rooms, ids),
            "zones": lambda f, _info, ids=None: _pick(f.zones, ids),
            "tags": lambda f, info: ix(info).tags(f.tag_ids),
            "client_id": lambda f, info: next((s.client_id for s in (f.sensors or [])), None),
        },
        "Room": {
            "floor": lambda r, info: ix(info).org.floors_by_id.get(r.floor_id),
            "tags": lambda r, info: ix(info).tags(r.tag_ids),
            "sensors": lambda r, info: ix(info).sensors_by_room.get(r.id, []),
        },
        "Zone": {
            "floor": lambda z, info: ix(info).org.floors_by_id.get(z.floor_id),
            "tags": lambda z, info: ix(info).tags(z.tag_ids),
            "sensors": lambda z, info: ix(info).sensors_by_zone.get(z.id, []),
        },
        "Sensor": {
            "floorID": _camel_id("floor_id", "floor"),
            "roomID": _camel_id("room_id", "room"),
            "hiveID": _camel_id("hive_id", "hive"),
            "floor": lambda s, info: ix(info).org.floors_by_id.get(s.floor_id) if s.floor_id else None,
            "room": lambda s, info: ix(info).org.rooms_by_id.get(s.room_id) if s.room_id else None,
            "hive": lambda s, info: ix(info).org.hives_by_id.get(s.hive_id) if s.hive_id else None,
        },
        "Hive": {"sensors": lambda h, info: ix(info).sensors_by_hive.get(h.id, [])},
        "Tag": {
            "rooms": lambda t, info: [ix(info).org.rooms_by_id[i] for i in t.room_ids],
            "zones": lambda t, info: [ix(info).org.zones_by_id[i] for i in t.zone_ids],
            "floors": lambda t, info: [ix(info).org.floors_by_id[i] for i in t.floor_ids],
        },
    }


@functools.cache
def build_emulator_schema() -> GraphQLSchema:
    """The SDL schema with every resolver attached (stateless, so built once per process)."""
    schema = build_schema(SCHEMA_SDL)
    query = schema.query_type
    assert query is not None
    for name, resolver in _root_resolvers().items():
        query.fields[name].resolve = resolver
    mutation = schema.mutation_type
    assert mutation is not None
    for name in ("createWebhooks", "updateWebhooks", "deleteWebhooks"):
        mutation.fields[name].resolve = WebhookStore.resolver(name)
    nested = _nested_resolvers()
    for type_name in {*ALIASES, *CONSTANTS, *nested}:
        gql_type = schema.type_map[type_name]
        assert isinstance(gql_type, GraphQLObjectType)
        for field_name, attribute in ALIASES.get(type_name, {}).items():
            gql_type.fields[field_name].resolve = _attribute(attribute)
        for field_name, value in CONSTANTS.get(type_name, {}).items():
            gql_type.fields[field_name].resolve = _constant(value)
        for field_name, resolver in nested.get(type_name, {}).items():
            gql_type.fields[field_name].resolve = resolver
    return schema


def _http_error(status: int, message: str, code: str) -> tuple[int, dict[str, Any]]:
    return status, {"errors": [{"message": message, "extensions": {"code": code}}]}


class GraphQLService:
    """Executes GraphQL-over-HTTP bodies against one organisation and one webhook store."""

    def __init__(self, org: Organization, webhooks: WebhookStore) -> None:
        self.schema = build_emulator_schema()
        self.index = OrgIndex(org)
        self.webhooks = webhooks
        self._lock = threading.Lock()
        self._documents: dict[str, tuple[DocumentNode | None, list[GraphQLError]]] = {}

    def _document(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        """Parsed and validated document, cached by query text (validation is the slow part)."""
        with self._lock:
            cached = self._documents.get(query)
        if cached is not None:
            return cached
        try:
            document: DocumentNode | None = parse(query)
            errors = validate(self.schema, document) if document is not None else []
        except GraphQLError as exc:
            document, errors = None, [exc]
        with self._lock:
            if len(self._documents) >= DOCUMENT_CACHE_SIZE:
                self._documents.clear()
            self._documents[query] = (document, errors)
        return document, errors

    def execute(self, body: Any, now: datetime, unknown_id_mode: str = "null") -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON payload) for a GraphQL-over-HTTP request body.

        ``unknown_id_mode``: what ``site(id:)``-style fields answer for an id that does not exist: ``"null"``
        (plain ``null``) or ``"error"`` (``null`` plus a NOT_FOUND error).
        """
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            return _http_error(
                400, "request body must be a JSON object with a non-empty 'query' string", "BAD_REQUEST"
            )
        variables = body.get("variables")
        operation = body.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            return _http_error(400, "'variables' must be a JSON object", "BAD_REQUEST")
        if operation is not None and not isinstance(operation, str):
            return _http_error(400, "'operationName' must be a string", "BAD_REQUEST")
        document, errors = self._document(body["query"])
        if document is None:
            return 400, {"errors": [_formatted(e, "GRAPHQL_PARSE_FAILED") for e in errors]}
        if errors:
            return 400, {"errors": [_formatted(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]}
        context = {
            "index": self.index,
            "webhooks": self.webhooks,
            "now": now,
            "unknown_id_mode": unknown_id_mode,
        }
        result = execute_sync(
            self.schema, document, variable_values=variables, operation_name=operation, context_value=context
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            if result.data is None and all(e.path is None for e in result.errors):
                # Request-level problems: bad variables, unknown operationName.
                return 400, {"errors": [_formatted(e, "BAD_USER_INPUT") for e in result.errors]}
            payload["errors"] = [_formatted(e, "INTERNAL_SERVER_ERROR") for e in result.errors]
        return 200, payload


def _formatted(error: GraphQLError, default_code: str) -> dict[str, Any]:
    """The spec's error format with an ``extensions.code`` (``default_code`` when the error has none)."""
    formatted: dict[str, Any] = dict(error.formatted)
    extensions: dict[str, Any] = dict(formatted.get("extensions") or {})
    extensions.setdefault("code", default_code)
    formatted["extensions"] = extensions
    return formatted


__all__ = ["GraphQLService", "OrgIndex", "build_emulator_schema"]
