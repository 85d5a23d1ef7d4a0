"""Contract: the key sets of the emulator's GraphQL answers match Butlr's real (sanitized) responses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_butlr.testing import ButlrEmulator
from tests.integration.emulator.conftest import Client
from tests.support.paths import FIXTURES

# Sanitized real responses from Butlr's MCP server repository (MIT, see tests/fixtures/butlr/LICENSE).
FIXTURES = FIXTURES / "butlr" / "graphql"

ROOM = "id name floorID roomType customID capacity { max mid }"
SENSOR = (
    "id name mac_address is_online power_type last_battery_change_date next_battery_change_date "
    "battery_change_by_date last_heartbeat floorID roomID"
)
HIVE = "id name serialNumber isOnline lastHeartbeat floorID"
FLOOR = f"rooms {{ {ROOM} }} sensors {{ {SENSOR} }} hives {{ {HIVE} }}"
# The requests that produced the fixtures (butlr-api.md section 10).
QUERIES = {
    "full-topology-org.json": (
        f"query GetDeviceHealth {{ sites {{ data {{ id name buildings {{ id name site_id floors {{ id name building_id {FLOOR} }} }} }} }} }}"
    ),
    "building-device-health.json": (
        f"query GetBuildingDeviceHealth($buildingId: ID!) {{ building(id: $buildingId) {{ id name site_id floors {{ id name building_id {FLOOR} }} }} }}"
    ),
    "floor-device-health.json": (
        f"query GetFloorDeviceHealth($floorId: ID!) {{ floor(id: $floorId) {{ id name building_id {FLOOR} }} }}"
    ),
    "tags-list.json": "query GetTagsWithUsage { tags { id name organization_id rooms { id name } zones { id name } floors { id name } } }",
}


def shape(value: Any) -> Any:
    """Key structure: objects -> {key: shape}, lists -> merged shape of their items, scalars -> type name."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items() if k != "__typename"}
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = merge(merged, shape(item))
        return [merged]
    return None if value is None else "scalar"


def merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge(a.get(k), b.get(k)) for k in a.keys() | b.keys()}
    if isinstance(a, list) and isinstance(b, list):
        return [merge(a[0], b[0])]
    return a


def assert_same_keys(expected: Any, actual: Any, path: str = "data") -> None:
    """Every object level has the same keys; None (null or empty list) in either side matches anything."""
    if expected is None or actual is None:
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        assert set(expected) == set(actual), f"{path}: keys differ: {sorted(set(expected) ^ set(actual))}"
        for key in expected:
            assert_same_keys(expected[key], actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert_same_keys(expected[0], actual[0], f"{path}[]")
    else:
        assert not isinstance(actual, (dict, list)), f"{path}: expected a scalar, got {actual!r}"


def _variables(emu: ButlrEmulator, name: str) -> dict[str, str]:
    building = emu.org.sites[0].buildings[0]
    if name.startswith("building"):
        return {"buildingId": building.id}
    if name.startswith("floor"):
        return {"floorId": building.floors[0].id}
    return {}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_graphql_key_sets_match_the_fixtures(emu: ButlrEmulator, client: Client, name: str) -> None:
    fixture = json.loads((FIXTURES / name).read_text())
    response = client.gql(QUERIES[name], _variables(emu, name) or None)
    assert response.status_code == 200
    body = response.json()
    # Selecting roomID on sensors without a room errors (a real quirk); the data shape is unaffected.
    for error in body.get("errors", []):
        assert error["path"][-1] == "roomID"
    assert_same_keys(shape(fixture), shape(body["data"]))
    assert set(body) <= {"data", "errors"}


def test_shape_helper_detects_a_missing_key() -> None:
    with pytest.raises(AssertionError, match="keys differ"):
        assert_same_keys(shape({"a": [{"x": 1, "y": 2}]}), shape({"a": [{"x": 1}]}))


def test_value_types_follow_the_fixtures(client: Client) -> None:
    sensor = client.data(f"{{ sensors {{ data {{ {SENSOR} }} }} }}".replace(" floorID roomID", ""))[
        "sensors"
    ]["data"]
    battery = next(s for s in sensor if s["battery_change_by_date"])
    assert isinstance(battery["last_heartbeat"], int)
    assert battery["battery_change_by_date"].endswith("Z") and "." in battery["battery_change_by_date"]
    rooms = client.data("{ rooms { data { capacity { max mid } roomType customID } } }")["rooms"]["data"]
    assert all(isinstance(r["capacity"]["max"], int) for r in rooms)
    assert any(r["roomType"] is None for r in rooms) and any(r["customID"] is None for r in rooms)
