"""Webhook management mutations and the one-subscription-per-event-type rule."""

from __future__ import annotations

from typing import Any

from tests.integration.emulator.conftest import Client

FIELDS = "id name event_types status send_on_value_change endpoint_config { url http_timeout api_key { key value } basic_auth { username password } }"
CREATE = f"mutation C($input: [WebhookCreateInput!]!) {{ createWebhooks(input: $input) {{ {FIELDS} }} }}"
UPDATE = (
    "mutation U($input: [WebhookUpdateInput!]!) { updateWebhooks(input: $input) { id name event_types } }"
)
DELETE = "mutation D($ids: [ID!]!) { deleteWebhooks(ids: $ids) }"
LIST = f"{{ webhooks {{ {FIELDS} }} }}"


def _create(client: Client, name: str, events: list[str], **config: Any) -> dict[str, Any]:
    endpoint = {"url": f"https://hooks.example.invalid/{name}", **config}
    return client.gql(
        CREATE, {"input": [{"name": name, "eventTypes": events, "endpointConfig": endpoint}]}
    ).json()


def test_create_list_update_delete(client: Client) -> None:
    created = _create(
        client,
        "rooms",
        ["ROOM_OCCUPANCY", "TRAFFIC"],
        httpTimeout=5,
        apiKey={"key": "X-Api-Key", "value": "k"},
    )
    hook = created["data"]["createWebhooks"][0]
    assert hook["id"].startswith("webhook_") and len(hook["id"]) == len("webhook_") + 27
    assert hook["endpoint_config"] == {
        "url": "https://hooks.example.invalid/rooms",
        "http_timeout": 5,
        "api_key": {"key": "X-Api-Key", "value": "k"},
        "basic_auth": None,
    }
    assert hook["status"] is True and hook["send_on_value_change"] is False
    listed = client.data(LIST)["webhooks"]
    assert listed == [hook]  # a bare list, no data wrapper
    updated = client.data(
        UPDATE, {"input": [{"id": hook["id"], "name": "renamed", "eventTypes": ["ZONE_OCCUPANCY"]}]}
    )
    assert updated["updateWebhooks"] == [
        {"id": hook["id"], "name": "renamed", "event_types": ["ZONE_OCCUPANCY"]}
    ]
    assert client.data(DELETE, {"ids": [hook["id"]]}) == {"deleteWebhooks": True}
    assert client.data(LIST)["webhooks"] == []


def test_second_webhook_for_a_subscribed_event_type_is_refused(client: Client) -> None:
    first = _create(client, "a", ["TRAFFIC"])["data"]["createWebhooks"][0]
    refused = _create(client, "b", ["FLOOR_OCCUPANCY", "TRAFFIC"])
    assert refused["data"] is None
    error = refused["errors"][0]
    assert (
        error["extensions"]["code"] == "BAD_USER_INPUT"
        and "TRAFFIC" in error["message"]
        and first["id"] in error["message"]
    )
    assert [h["id"] for h in client.data(LIST)["webhooks"]] == [first["id"]]  # nothing half-created
    # the same type twice in one batch is refused too
    batch = [
        {"name": "x", "eventTypes": ["PIR_MOTION"], "endpointConfig": {"url": "https://h.example.invalid/x"}},
        {"name": "y", "eventTypes": ["PIR_MOTION"], "endpointConfig": {"url": "https://h.example.invalid/y"}},
    ]
    assert client.gql(CREATE, {"input": batch}).json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert len(client.data(LIST)["webhooks"]) == 1


def test_update_cannot_take_another_webhooks_event_type(client: Client) -> None:
    a = _create(client, "a", ["TRAFFIC"])["data"]["createWebhooks"][0]
    b = _create(client, "b", ["ROOM_OCCUPANCY"])["data"]["createWebhooks"][0]
    body = client.gql(UPDATE, {"input": [{"id": b["id"], "eventTypes": ["TRAFFIC"]}]}).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    swap = [{"id": a["id"], "eventTypes": ["ROOM_OCCUPANCY"]}, {"id": b["id"], "eventTypes": ["TRAFFIC"]}]
    assert client.data(UPDATE, {"input": swap})["updateWebhooks"][0]["event_types"] == ["ROOM_OCCUPANCY"]


def test_unknown_ids_and_bad_input(client: Client) -> None:
    body = client.gql(DELETE, {"ids": ["webhook_missing"]}).json()
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    body = client.gql(UPDATE, {"input": [{"id": "webhook_missing", "name": "x"}]}).json()
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    bad_url = _create(client, "u", ["TRAFFIC"], url="ftp://nope")
    assert "endpointConfig.url" in bad_url["errors"][0]["message"]
    bad_enum = client.gql(
        CREATE,
        {"input": [{"name": "e", "eventTypes": ["NOPE"], "endpointConfig": {"url": "https://x.invalid"}}]},
    )
    assert (
        bad_enum.status_code == 400 and bad_enum.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    )


def test_snake_case_endpoint_config_input_is_accepted(client: Client) -> None:
    hook = _create(client, "s", ["DETECTIONS"], http_timeout=9, basic_auth={"username": "u", "password": "p"})
    config = hook["data"]["createWebhooks"][0]["endpoint_config"]
    assert config["http_timeout"] == 9 and config["basic_auth"] == {"username": "u", "password": "p"}
