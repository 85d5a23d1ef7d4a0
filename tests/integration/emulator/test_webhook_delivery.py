"""Webhook delivery end to end with a loopback receiver: payloads, auth, values, filters, untidiness.

Subscriptions are made over GraphQL (the real path) or ``emu.subscribe``; the emulator clock is frozen and
moved, and ``deliver_now`` runs the pass the background thread would run (auto delivery is off here so
that every test sees exactly one pass; ``test_webhook_operations.py`` covers the thread).
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_butlr.testing import ButlrEmulator
from airflow_provider_butlr.testing.timeseries.series import minute_values, series_assets
from tests.integration.emulator.conftest import REPORTING, Client
from tests.integration.emulator.webhook_receiver import Receiver, receiver

# Wednesday 15:20:30 UTC: offices are busy in New York and Berlin.
START = datetime(2025, 11, 5, 15, 20, 30, tzinfo=UTC)
FIRST_MINUTE = START.replace(second=0)
TIDY = {"webhook_revision_rate": 0.0, "webhook_duplicate_rate": 0.0, "webhook_shuffle": False}
CREATE = "mutation C($input: [WebhookCreateInput!]!) { createWebhooks(input: $input) { id event_types } }"
UPDATE = "mutation U($input: [WebhookUpdateInput!]!) { updateWebhooks(input: $input) { id } }"


@pytest.fixture
def hooked(emu: ButlrEmulator) -> Iterator[tuple[ButlrEmulator, Receiver]]:
    """The emulator frozen at START, tidy, delivering only when asked; a receiver."""
    emu.config.webhook_auto_delivery = False
    for name, value in TIDY.items():
        setattr(emu.config, name, value)
    emu.clock.freeze(START)
    with receiver() as rx:
        yield emu, rx


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def create(client: Client, url: str, events: list[str], **extra: Any) -> str:
    item = {"name": "t", "eventTypes": events, "endpointConfig": {"url": url}, **extra}
    answer = client.gql(CREATE, {"input": [item]}).json()
    assert "errors" not in answer, answer
    return str(answer["data"]["createWebhooks"][0]["id"])


def run_minutes(emu: ButlrEmulator, minutes: int) -> list[dict[str, Any]]:
    emu.clock.advance(60 * minutes)
    return emu.deliver_now()


def test_payload_shape_and_api_key_header(client: Client, hooked: tuple[ButlrEmulator, Receiver]) -> None:
    emu, rx = hooked
    room = series_assets(emu.org, "room_occupancy", emu.config.seed)[0]
    config = {"url": rx.url(), "apiKey": {"key": "X-Butlr-Key", "value": "key-value-1"}, "httpTimeout": 5}
    answer = client.gql(
        CREATE,
        {"input": [{"name": "k", "eventTypes": ["ROOM_OCCUPANCY_1MIN", "ROOM_OCCUPANCY"],
                    "endpointConfig": config, "filters": {"room_ids": [room]}}]},
    )  # fmt: skip
    assert "errors" not in answer.json()
    records = run_minutes(emu, 2)
    assert [r["status_code"] for r in records] == [200] * 4 and len(rx.received) == 4
    assert all(r.headers["x-butlr-key"] == "key-value-1" for r in rx.received)
    assert all(r.headers["content-type"] == "application/json" and r.path == "/butlr" for r in rx.received)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in rx.events:
        by_type.setdefault(event["type"], []).append(event)
    rollup, realtime = by_type["ROOM_OCCUPANCY_1MIN"], by_type["ROOM_OCCUPANCY"]
    r = emu.org.rooms_by_id[room]
    floor = emu.org.floors_by_id[r.floor_id]
    site = emu.org.sites_by_id[floor.site_id]
    for event in rollup + realtime:
        assert set(event) == {"id", "type", "timestamp", "version", "metadata", "data"}
        assert event["id"].startswith("event_") and len(event["id"]) == len("event_") + 27
        assert event["version"] == "v1.0.0" and type(event["data"]) is int
        meta = event["metadata"]
        assert (meta["org_id"], meta["site_id"], meta["floor_id"], meta["room_id"]) == (
            emu.org.id, site.id, floor.id, room,
        )  # fmt: skip
        assert (meta["site_name"], meta["floor_name"], meta["room_name"]) == (site.name, floor.name, r.name)
        assert "zone_id" not in meta and meta["building_id"] == floor.building_id
    stamps = [e["timestamp"] for e in rollup]
    assert stamps == [int((FIRST_MINUTE + timedelta(minutes=i)).timestamp() * 1000) for i in range(2)]
    assert all(e["timestamp"] % 60_000 != 0 for e in realtime)  # real-time events fall inside the minute
    assert [e["timestamp"] // 60_000 for e in realtime] == [s // 60_000 for s in stamps]


def test_basic_auth(client: Client, hooked: tuple[ButlrEmulator, Receiver]) -> None:
    emu, rx = hooked
    floor = next(iter(emu.org.floors_by_id))
    config = {"url": rx.url("/in"), "basic_auth": {"username": "butlr", "password": "pass:word"}}
    create(client, rx.url(), ["FLOOR_OCCUPANCY_1MIN"], endpointConfig=config, filters={"floor_ids": [floor]})
    run_minutes(emu, 1)
    assert len(rx.received) == 1 and rx.received[0].path == "/in"
    expected = "Basic " + base64.b64encode(b"butlr:pass:word").decode()
    assert rx.received[0].headers["authorization"] == expected


def reporting_minutes(
    client: Client, measurement: str, key: str, ids: list[str], field: str = ""
) -> dict[Any, Any]:
    body = {
        "filter": {"measurements": [measurement], key: {"eq": ids}, "start": iso(FIRST_MINUTE),
                   "stop": iso(FIRST_MINUTE + timedelta(minutes=5)), "value": {"gte": 0}},
        "window": {"every": "1m", "function": "max", "timezone": "UTC", "create_empty": True},
    }  # fmt: skip
    rows = client.post(REPORTING, body, token=client.token).json()["data"]
    column = {"rooms": "room_id", "zones": "zone_id", "spaces": "space_id", "sensors": "sensor_id"}[key]
    return {(row[column], row["time"], row["field"] if field else ""): row["value"] for row in rows}


@pytest.mark.parametrize("untidy", [False, True])
def test_the_latest_value_per_entity_and_minute_equals_the_reporting_apis(
    client: Client, hooked: tuple[ButlrEmulator, Receiver], untidy: bool
) -> None:
    emu, rx = hooked
    if untidy:
        emu.config.webhook_revision_rate, emu.config.webhook_duplicate_rate = 0.6, 0.3
        emu.config.webhook_shuffle = True
    floor = next(iter(emu.org.floors_by_id))
    types = ["ROOM_OCCUPANCY_1MIN", "ZONE_OCCUPANCY_1MIN", "FLOOR_OCCUPANCY_1MIN", "TRAFFIC"]
    create(client, rx.url(), types, filters={"floor_ids": [floor]})
    run_minutes(emu, 5)
    emu.clock.advance(60 * 4)  # the look-back: every minute gets its final recomputation ...
    emu.deliver_now()
    emu.config.data_lag_minutes = 0  # ... and the Reporting API has every minute too
    latest: dict[tuple[str, str, str], Any] = {}
    for event in rx.events:  # arrival order: "keep the latest" per (entity, timestamp)
        meta = event["metadata"]  # TRAFFIC happens inside its minute: compare by minute
        minute = iso(datetime.fromtimestamp(event["timestamp"] // 60_000 * 60, UTC))
        if minute >= iso(FIRST_MINUTE + timedelta(minutes=5)):
            continue
        entity = meta.get("sensor_id") or meta.get("zone_id") or meta.get("room_id") or meta["floor_id"]
        if event["type"] == "TRAFFIC":
            for field in ("in", "out"):
                latest[(entity, minute, field)] = event["data"][field]
        else:
            latest[(entity, minute, "")] = event["data"]
    f = emu.org.floors_by_id[floor]
    truth: dict[Any, Any] = {}
    truth |= reporting_minutes(client, "room_occupancy", "rooms", [r.id for r in f.rooms])
    truth |= reporting_minutes(client, "zone_occupancy", "zones", [z.id for z in f.zones])
    truth |= reporting_minutes(client, "floor_occupancy", "spaces", [floor])
    sensors = [s.id for s in f.sensors or [] if s.mode == "traffic"]
    traffic = {k: v for k, v in reporting_minutes(client, "traffic", "sensors", sensors, "f").items() if v}
    occupancy = {k: v for k, v in latest.items() if not k[2]}
    assert occupancy == truth and len(truth) % 5 == 0 and len(truth) > 5 * len(f.rooms)  # rooms, zones, floor
    crossings = {k: v for k, v in latest.items() if k[2] and v}
    assert crossings == traffic and traffic  # TRAFFIC events exist exactly for minutes with crossings
    ids = [e["id"] for e in rx.events]
    if untidy:
        assert len(ids) > len(set(ids))  # duplicates: the same event id twice
        assert len({(e["metadata"].get("room_id"), e["timestamp"]) for e in rx.events}) < len(set(ids))
    else:
        assert len(ids) == len(set(ids))


def test_revisions_resend_earlier_minutes_with_new_ids_and_end_on_the_final_value(
    client: Client, hooked: tuple[ButlrEmulator, Receiver]
) -> None:
    emu, rx = hooked
    emu.config.webhook_revision_rate = 1.0  # every provisional value is off by one
    room = series_assets(emu.org, "room_occupancy", emu.config.seed)[2]
    create(client, rx.url(), ["ROOM_OCCUPANCY_1MIN"], filters={"room_ids": [room]})
    records = run_minutes(emu, 9)
    first_minute = FIRST_MINUTE.timestamp() * 1000
    sends: dict[int, list[dict[str, Any]]] = {}
    for event, record in zip(rx.events, records, strict=True):
        sends.setdefault(event["timestamp"], []).append({**event, "revision": record["revision"]})
    truth = dict(minute_values(emu.org, "room_occupancy", room, FIRST_MINUTE,
                               FIRST_MINUTE + timedelta(minutes=5), emu.config.seed))  # fmt: skip
    for minute, value in truth.items():  # minutes 15:20 .. 15:24 are past their look-back at 15:29
        events = sends[int(minute.timestamp() * 1000)]
        assert events[0]["data"] != value and events[-1]["data"] == value
        assert events[0]["revision"] == 0 and events[-1]["revision"] <= 4
        assert len({e["id"] for e in events}) == len(events) > 1  # a revision is a new event
    assert min(sends) == first_minute


def test_filters_and_send_on_value_change(client: Client, hooked: tuple[ButlrEmulator, Receiver]) -> None:
    emu, rx = hooked
    rooms = series_assets(emu.org, "room_occupancy", emu.config.seed)
    hook = create(client, rx.url(), ["ROOM_OCCUPANCY_1MIN"], filters={"room_ids": rooms[:3]})
    run_minutes(emu, 10)
    everything = rx.events
    assert {e["metadata"]["room_id"] for e in everything} == set(rooms[:3]) and len(everything) == 30
    rx.received.clear()
    client.gql(UPDATE, {"input": [{"id": hook, "send_on_value_change": True}]})
    emu.deliver_now(resend_minutes=10)
    changed = rx.events
    for room in rooms[:3]:
        values = [e["data"] for e in changed if e["metadata"]["room_id"] == room]
        assert all(a != b for a, b in itertools.pairwise(values))
        full = [e["data"] for e in everything if e["metadata"]["room_id"] == room]
        assert values == [v for i, v in enumerate(full) if i == 0 or v != full[i - 1]]
    assert len(changed) < len(everything)
    mac = next(s.mac_address for s in emu.org.sensors_by_id.values() if s.room_id == rooms[5])
    bad = client.gql(UPDATE, {"input": [{"id": hook, "filters": {"rooms": rooms[:1]}}]}).json()
    assert (
        bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        and "room_ids" in bad["errors"][0]["message"]
    )
    client.gql(
        UPDATE, {"input": [{"id": hook, "filters": {"mac_addresses": [mac]}, "send_on_value_change": False}]}
    )
    rx.received.clear()
    run_minutes(emu, 1)
    assert {e["metadata"]["room_id"] for e in rx.events} == {rooms[5]}


def test_shuffled_minutes_never_overtake_an_earlier_minute(
    client: Client, hooked: tuple[ButlrEmulator, Receiver]
) -> None:
    emu, rx = hooked
    emu.config.webhook_shuffle = True
    create(client, rx.url(), ["ROOM_OCCUPANCY_1MIN"])
    run_minutes(emu, 3)
    rooms = [e["metadata"]["room_id"] for e in rx.events]
    stamps = [e["timestamp"] for e in rx.events]
    assert stamps == sorted(stamps)  # tidy look-back: one send per minute, minutes in order
    per_minute = len(rooms) // 3
    tidy_order = series_assets(emu.org, "room_occupancy", emu.config.seed)
    assert rooms[:per_minute] != tidy_order and sorted(rooms[:per_minute]) == sorted(tidy_order)
