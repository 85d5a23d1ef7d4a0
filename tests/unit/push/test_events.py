"""Webhook payloads: the documented shape accepted, everything else refused with a clear 4xx."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from airflow_provider_butlr.push.events import EVENT_TYPES, WebhookRejected, parse_event

pytestmark = pytest.mark.airflow_independent  # pure: run once, not per Airflow minor

ORG = "org_2d1HDjft5Q1DV1CeXDao0nhL9xK"
NOW_MS = 1_762_360_000_000  # 2025-11-05T16:26:40Z
MINUTE_MS = 1_762_356_000_000  # 2025-11-05T15:20:00Z
ROOM = "room_2or6eX05kEPTrtA0OvmHhjmfUBD"


def zone_event(**changes: Any) -> dict[str, Any]:
    """The ZONE_OCCUPANCY_1MIN example of docs/emulator.md."""
    body = {
        "id": "event_2Vo3pBjI6R91KruvN7skFkx2o9F",
        "type": "ZONE_OCCUPANCY_1MIN",
        "timestamp": MINUTE_MS,
        "version": "v1.0.0",
        "metadata": {
            "org_id": ORG,
            "site_id": "site_2GwebAjANzdYgqmE1JGDwsJeOuS",
            "building_id": "building_2GFYGatODzV526cnQ3NzWyr0igX",
            "floor_id": "space_2Gd6QSxsGVBurIdb9lXmW0K1vsp",
            "room_id": ROOM,
            "zone_id": "zone_2okfDC1FTq4PdChUFe0kl6QAxW3",
            "floor_custom_id": "FL-01",
            "room_custom_id": "R-103",
            "zone_custom_id": "Z-03",
            "org_name": "Butlr Emulator Demo Org",
            "site_name": "New York HQ",
            "building_name": "New York HQ - Building A",
            "floor_name": "Floor 1",
            "room_name": "Focus Room 1.1",
            "zone_name": "Zone 1-C",
        },
        "data": 2,
    }
    body.update(changes)
    return body


def parse(body: Any) -> Any:
    return parse_event(body, org_id=ORG, now_ms=NOW_MS)


def test_the_documented_zone_event_is_about_its_zone_with_its_ids_and_names() -> None:
    event = parse(zone_event())
    assert (event.kind, event.asset_id, event.entity_id, event.data) == (
        "zones",
        "zone_2okfDC1FTq4PdChUFe0kl6QAxW3",
        "zone_2okfDC1FTq4PdChUFe0kl6QAxW3",
        2,
    )
    assert event.stream_key == "ZONE_OCCUPANCY_1MIN:zone_2okfDC1FTq4PdChUFe0kl6QAxW3"
    summary = event.summary()
    assert summary["timestamp"] == "2025-11-05T15:20:00Z" and summary["value"] == 2
    assert summary["metadata"]["room_name"] == "Focus Room 1.1" and summary["metadata"]["org_id"] == ORG


def test_unknown_metadata_keys_are_not_kept_and_rollups_are_minute_aligned() -> None:
    body = zone_event(timestamp=MINUTE_MS + 42_123)
    body["metadata"]["injected"] = "<script>"
    event = parse(body)
    assert "injected" not in event.metadata
    assert event.timestamp_ms == MINUTE_MS


def test_traffic_is_deduplicated_per_sensor_and_belongs_to_its_room_or_else_its_floor() -> None:
    body = zone_event(type="TRAFFIC", timestamp=MINUTE_MS + 51_023, data={"in": 0, "out": 1})
    body["metadata"].update(
        sensor_id="sensor_24gc6lqb7ymLQMVLqo6xdphRjxG", mac_address="00-17-0d-00-00-f7-ee-df"
    )
    event = parse(body)
    assert (event.kind, event.asset_id, event.entity_id) == (
        "rooms",
        ROOM,
        "sensor_24gc6lqb7ymLQMVLqo6xdphRjxG",
    )
    assert event.timestamp_ms == MINUTE_MS + 51_023  # real-time: not rounded
    del body["metadata"]["room_id"]
    assert (parse(body).kind, parse(body).asset_id) == ("floors", "space_2Gd6QSxsGVBurIdb9lXmW0K1vsp")


@pytest.mark.parametrize("event_type", ["DETECTIONS", "PIR_MOTION", "SENSOR_HEALTH"])
def test_documented_types_without_a_stream_are_accepted_and_not_recorded(event_type: str) -> None:
    event = parse(zone_event(type=event_type, data={"local": [[1, 2]], "world": [[3, 4]]}))
    assert not event.recorded


def test_every_event_type_of_the_catalogue_parses() -> None:
    for event_type, spec in EVENT_TYPES.items():
        data: Any = {"in": 1, "out": 0} if spec.traffic else 3
        assert parse(zone_event(type=event_type, data=data)).event_type == event_type


def test_another_organisation_is_forbidden() -> None:
    body = zone_event()
    body["metadata"]["org_id"] = "org_someoneElse000000000000000"
    with pytest.raises(WebhookRejected) as err:
        parse(body)
    assert err.value.status == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "ROOM_OCCUPANCY_1M"}, "unknown event type"),
        ({"type": None}, "unknown event type"),
        ({"id": ""}, "id must be"),
        ({"id": "event with spaces"}, "id must be"),
        ({"timestamp": "2025-11-05T15:20:00Z"}, "timestamp must be an integer"),
        ({"timestamp": True}, "timestamp must be an integer"),
        ({"timestamp": 1762356000}, "out of range"),  # seconds, not milliseconds
        ({"timestamp": NOW_MS + 2 * 86_400_000}, "out of range"),
        ({"version": "v2.0.0"}, "version"),
        ({"metadata": None}, "metadata must be"),
        ({"metadata": {"zone_id": "zone_x"}}, "org_id is required"),
        ({"data": -1}, "data must be a whole number"),
        ({"data": 1.5}, "data must be a whole number"),
        ({"data": True}, "data must be a whole number"),
        ({"data": 10**9}, "data must be a whole number"),
        ({"data": "2"}, "data must be a whole number"),
    ],
)
def test_malformed_events_are_refused_with_422_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(WebhookRejected) as err:
        parse(zone_event(**change))
    assert err.value.status == 422 and field in err.value.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("zone_id", None),
        ("room_name", "x" * 300),
        ("room_name", "line\nbreak"),
        ("floor_id", "space with blanks"),
        ("mac_address", "not-a-mac"),
    ],
)
def test_bad_metadata_is_refused(key: str, value: Any) -> None:
    body = zone_event()
    body["metadata"][key] = value
    if value is None:
        del body["metadata"][key]
    with pytest.raises(WebhookRejected) as err:
        parse(body)
    assert err.value.status == 422 and key in err.value.message


def test_a_refusal_never_echoes_an_unknown_value() -> None:
    secret_looking = "sk_live_" + "A" * 40
    for body in (zone_event(type=secret_looking + " x"), zone_event(id=secret_looking + " x")):
        with pytest.raises(WebhookRejected) as err:
            parse(body)
        assert secret_looking not in err.value.message


@pytest.mark.parametrize("body", [[], "event", 3, None])
def test_a_body_that_is_not_one_object_is_refused(body: Any) -> None:
    with pytest.raises(WebhookRejected) as err:
        parse(copy.deepcopy(body))
    assert err.value.status == 422


@pytest.mark.parametrize("data", [{"in": -1, "out": 0}, {"in": 1, "sideways": 2}, 3])
def test_bad_traffic_data_is_refused(data: Any) -> None:
    with pytest.raises(WebhookRejected):
        parse(zone_event(type="TRAFFIC", data=data))
