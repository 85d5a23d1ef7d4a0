"""GraphQL semantics and the real API's quirks, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_butlr.testing import ButlrEmulator, EmulatorClock
from tests.integration.emulator.conftest import GRAPHQL, Client


def _errors(
    client: Client, query: str, variables: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    response = client.gql(query, variables)
    return response.status_code, response.json()


def test_sites_has_a_data_wrapper_and_null_timezone(emu: ButlrEmulator, client: Client) -> None:
    sites = client.data("{ sites { data { id name timezone siteNumber customID org_id butlrCode } } }")[
        "sites"
    ]["data"]
    assert [s["id"] for s in sites] == [s.id for s in emu.org.sites]
    assert None in [s["timezone"] for s in sites]
    assert all(s["org_id"] == emu.org.id for s in sites)


def test_single_object_queries_by_id_and_custom_id(emu: ButlrEmulator, client: Client) -> None:
    site = emu.org.sites[0]
    assert client.data("query($id: ID){ site(id: $id) { id } }", {"id": site.id})["site"]["id"] == site.id
    assert site.custom_id
    assert client.data(f'{{ site(customID: "{site.custom_id}") {{ id }} }}')["site"]["id"] == site.id
    building = site.buildings[0]
    floor = building.floors[0]
    room, zone = floor.rooms[0], floor.zones[0]
    data = client.data(
        f'{{ building(id: "{building.id}") {{ id site {{ id }} address {{ lines country }} capacity {{ max mid }} }}'
        f' floor(id: "{floor.id}") {{ id building {{ id }} floorNumber }}'
        f' room(id: "{room.id}") {{ id floor_id floorID floor {{ id }} roomType customID }}'
        f' zone(id: "{zone.id}") {{ id floor_id room_id }} }}'
    )
    assert data["building"]["site"]["id"] == site.id and data["building"]["address"]["lines"]
    assert data["floor"]["building"]["id"] == building.id and data["floor"]["floorNumber"] == 1
    assert data["room"]["floorID"] == data["room"]["floor_id"] == floor.id == data["room"]["floor"]["id"]
    assert data["zone"]["floor_id"] == floor.id


@pytest.mark.parametrize("kind", ["site", "building", "floor", "room", "zone"])
def test_an_unknown_id_answers_plain_null_or_with_the_switch_a_not_found_error(
    client: Client, emu: ButlrEmulator, kind: str
) -> None:
    query = f'{{ {kind}(id: "{kind}_nope") {{ id }} }}'
    response = client.gql(query)
    assert response.status_code == 200 and response.json() == {"data": {kind: None}}  # no errors member
    by_custom_id = client.gql(f'{{ {kind}(customID: "NOPE") {{ id }} }}')
    assert by_custom_id.json() == {"data": {kind: None}}
    emu.config.graphql_unknown_id_mode = "error"
    status, body = _errors(client, query)
    assert status == 200 and body["data"] == {kind: None}
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND" and body["errors"][0]["path"] == [kind]


def test_a_missing_argument_is_bad_user_input(client: Client) -> None:
    status, body = _errors(client, "{ room { id } }")
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_list_queries_with_ids(emu: ButlrEmulator, client: Client) -> None:
    floor_ids = list(emu.org.floors_by_id)[:2]
    room_ids = list(emu.org.rooms_by_id)[:3]
    data = client.data(
        "query($f: [String!], $r: [String!]) { floors(ids: $f) { data { id } } rooms(ids: $r) { data { id } }"
        " zones { data { id } } buildings { data { id } } }",
        {"f": floor_ids, "r": room_ids},
    )
    assert [f["id"] for f in data["floors"]["data"]] == floor_ids
    assert [r["id"] for r in data["rooms"]["data"]] == room_ids
    assert len(data["zones"]["data"]) == len(emu.org.zones_by_id)
    assert len(data["buildings"]["data"]) == len(emu.org.buildings_by_id)


def test_floor_sensors_is_null_on_the_floor_without_sensors(emu: ButlrEmulator, client: Client) -> None:
    floors = client.data("{ floors { data { id sensors { id } hives { id } rooms { id } } } }")["floors"][
        "data"
    ]
    empty = [f for f in floors if f["sensors"] is None]
    assert len(empty) == 1 and empty[0]["hives"] == [] and empty[0]["rooms"]


def test_camel_case_sensor_ids_error_on_null_with_partial_data(emu: ButlrEmulator, client: Client) -> None:
    status, body = _errors(client, "{ sensors { data { id room_id roomID floorID } } }")
    assert status == 200
    sensors = body["data"]["sensors"]["data"]
    null_room = [i for i, s in enumerate(sensors) if s["room_id"] is None]
    assert null_room and len(sensors) == len(emu.org.sensors_by_id)
    assert len(body["errors"]) == len(null_room)
    assert {tuple(e["path"]) for e in body["errors"]} == {("sensors", "data", i, "roomID") for i in null_room}
    assert all(sensors[i]["roomID"] is None for i in null_room)
    assert all(s["roomID"] == s["room_id"] for s in sensors if s["room_id"])
    # snake_case is safe
    assert "errors" not in client.gql("{ sensors { data { id room_id floor_id hive_id } } }").json()


def test_sensor_health_fields(client: Client) -> None:
    sensors = client.data(
        "{ sensors { data { id is_online is_streaming last_heartbeat power_type battery_change_by_date "
        "mode is_entrance mac_address hive_serial installation_status } } }"
    )["sensors"]["data"]
    assert all(isinstance(s["last_heartbeat"], int) for s in sensors)
    assert any(s["battery_change_by_date"] for s in sensors)
    assert {s["mode"] for s in sensors} == {"presence", "traffic"}


def test_hives_exclude_placeholders_unless_asked(emu: ButlrEmulator, client: Client) -> None:
    query = "query($p: Boolean) { hives(returnPlaceholders: $p) { data { id serialNumber isOnline lastHeartbeat netPathStability floorID } } }"
    default = client.data(query)["hives"]["data"]
    everything = client.data(query, {"p": True})["hives"]["data"]
    assert len(everything) == len(emu.org.hives_by_id) == len(default) + 1
    assert not any(h["serialNumber"].startswith("fake") for h in default)
    serial = default[0]["serialNumber"]
    only = client.data(f'{{ hives(serial_numbers: ["{serial.upper()}"]) {{ data {{ id }} }} }}')["hives"][
        "data"
    ]
    assert [h["id"] for h in only] == [default[0]["id"]]


def test_sensors_by_ids_and_macs_and_ignored_filters(emu: ButlrEmulator, client: Client) -> None:
    sensor = next(iter(emu.org.sensors_by_id.values()))
    by_mac = client.data(f'{{ sensors(mac_addresses: ["{sensor.mac_address}"]) {{ data {{ id }} }} }}')
    assert by_mac["sensors"]["data"] == [{"id": sensor.id}]
    by_id = client.data(f'{{ sensors(ids: ["{sensor.id}"]) {{ data {{ mac_address }} }} }}')
    assert by_id["sensors"]["data"] == [{"mac_address": sensor.mac_address}]
    ignored = client.data(f'{{ sensors(floor_ids: ["{sensor.floor_id}"]) {{ data {{ id }} }} }}')
    assert len(ignored["sensors"]["data"]) == len(emu.org.sensors_by_id)  # not implemented upstream either


def test_tags_are_a_bare_list(emu: ButlrEmulator, client: Client) -> None:
    tags = client.data("{ tags { id name organization_id rooms { id } zones { id } floors { id } } }")["tags"]
    assert isinstance(tags, list) and len(tags) == len(emu.org.tags)
    unused = [t for t in tags if not (t["rooms"] or t["zones"] or t["floors"])]
    assert len(unused) == 1
    one = client.data("query($ids: [String!]) { tags(ids: $ids) { id } }", {"ids": [tags[0]["id"]]})
    assert one["tags"] == [{"id": tags[0]["id"]}]


def test_rooms_by_tag_and_or(emu: ButlrEmulator, client: Client) -> None:
    by_name = {t.name: t for t in emu.org.tags}
    a, b = by_name["videoconf"], by_name["focus"]
    query = "query($t: [String!]!, $or: Boolean) { roomsByTag(tagIDs: $t, useOR: $or) { data { id } } }"
    union = {r["id"] for r in client.data(query, {"t": [a.id, b.id], "or": True})["roomsByTag"]["data"]}
    both = {r["id"] for r in client.data(query, {"t": [a.id, b.id]})["roomsByTag"]["data"]}
    assert union == set(a.room_ids) | set(b.room_ids) and union
    assert both == set(a.room_ids) & set(b.room_ids)
    quiet = by_name["quiet"]
    zones = client.data(f'{{ zonesByTag(tagIDs: ["{quiet.id}"]) {{ data {{ id }} }} }}')["zonesByTag"]["data"]
    assert {z["id"] for z in zones} == set(quiet.zone_ids)
    executive = by_name["executive"]
    floors = client.data(f'{{ floorsByTag(tagIDs: ["{executive.id}"]) {{ data {{ id }} }} }}')["floorsByTag"][
        "data"
    ]
    assert {f["id"] for f in floors} == set(executive.floor_ids)
    _status, body = _errors(client, '{ roomsByTag(tagIDs: ["videoconf"]) { data { id } } }')
    assert (
        body["errors"][0]["extensions"]["code"] == "NOT_FOUND" and "not names" in body["errors"][0]["message"]
    )


def test_variables_fragments_and_operation_name(emu: ButlrEmulator, client: Client) -> None:
    document = """
    fragment RoomBits on Room { id name capacity { max mid } }
    query One($id: ID!) { room(id: $id) { ...RoomBits } }
    query Two { sites { data { id } } }
    """
    room = next(iter(emu.org.rooms_by_id.values()))
    response = client.post(
        GRAPHQL, {"query": document, "variables": {"id": room.id}, "operationName": "One"}, token=client.token
    )
    assert response.json() == {
        "data": {
            "room": {
                "id": room.id,
                "name": room.name,
                "capacity": {"max": room.capacity.max, "mid": room.capacity.mid},
            }
        }
    }
    ambiguous = client.post(GRAPHQL, {"query": document, "variables": {"id": room.id}}, token=client.token)
    assert (
        ambiguous.status_code == 400
        and ambiguous.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    )


def test_request_errors(client: Client) -> None:
    status, body = _errors(client, "query($id: ID!) { floor(id: $id) { id } }", {})
    assert status == 400 and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    status, body = _errors(client, "{ sites { data { id ")
    assert status == 400 and body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    status, body = _errors(client, "{ rooms { data { capacity } } }")  # object fields need a sub-selection
    assert status == 400 and body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    no_query = client.post(GRAPHQL, {"variables": {}}, token=client.token)
    assert no_query.status_code == 400 and "query" in no_query.json()["errors"][0]["message"]


def test_introspection(client: Client) -> None:
    data = client.data(
        '{ __schema { queryType { name } mutationType { name } } __type(name: "Sensor") { fields { name } } }'
    )
    assert data["__schema"] == {"queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}}
    names = {f["name"] for f in data["__type"]["fields"]}
    assert {"floorID", "roomID", "hiveID", "floor_id", "room_id", "last_heartbeat", "power_type"} <= names


def test_answers_are_identical_across_runs_with_the_same_seed() -> None:
    instant = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
    query = (
        "{ sites { data { id name timezone buildings { id floors { id rooms { id name capacity { max mid } }"
        " sensors { id mac_address last_heartbeat battery_change_by_date } hives { id serialNumber } } } } }"
        " tags { id name rooms { id } } }"
    )
    answers = []
    for _ in range(2):
        clock = EmulatorClock()
        clock.freeze(instant)
        with ButlrEmulator(port=0, seed=7, clock=clock) as emu:
            answers.append(Client(emu).gql(query).content)
    assert answers[0] == answers[1]
    with ButlrEmulator(port=0, seed=8) as other:
        assert Client(other).gql(query).content != answers[0]
