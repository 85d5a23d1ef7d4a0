"""Subscriptions as code: declarations checked, the plan against what Butlr has, no secret in it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.push.receiver import ReceiverSettings
from airflow_provider_butlr.push.subscriptions import (
    RemoteSubscription,
    SubscriptionSpec,
    create_input,
    plan_reconciliation,
    update_input,
)

pytestmark = pytest.mark.airflow_independent  # pure: run once, not per Airflow minor

ORG = "org_2d1HDjft5Q1DV1CeXDao0nhL9xK"
KEY = "rcv-secret-Hq4Zp7Ld2Wx9Kb6Tn1"
URL = "https://airflow.example.com/butlr/webhooks"
RECEIVER = ReceiverSettings.from_fields(
    "butlr_webhook_default", host=URL, login=None, password=KEY, extra={"org_id": ORG}
)
ROOMS = {
    "name": "rooms",
    "event_types": ["ROOM_OCCUPANCY_1MIN"],
    "filters": {"room_ids": ["room_b", "room_a"]},
}


def spec(**changes: Any) -> SubscriptionSpec:
    return SubscriptionSpec.from_json({**ROOMS, **changes})


def remote(
    name: str = "rooms",
    event_types: tuple[str, ...] = ("ROOM_OCCUPANCY_1MIN",),
    secret: str = KEY,
    webhook_id: str = "webhook_1",
    **changes: Any,
) -> RemoteSubscription:
    item = {
        "id": webhook_id,
        "name": name,
        "org_id": ORG,
        "event_types": list(event_types),
        "filters": {"room_ids": ["room_a", "room_b"]},
        "send_on_value_change": False,
        "endpoint_config": {
            "url": URL,
            "http_timeout": None,
            "api_key": {"key": "X-Butlr-Webhook-Key", "value": secret},
            "basic_auth": None,
        },
    }
    item.update(changes)
    return RemoteSubscription.from_graphql(item)


def test_declarations_are_normalised() -> None:
    s = spec(event_types=["ZONE_OCCUPANCY_1MIN", "ROOM_OCCUPANCY_1MIN", "ZONE_OCCUPANCY_1MIN"])
    assert s.event_types == ("ROOM_OCCUPANCY_1MIN", "ZONE_OCCUPANCY_1MIN")
    assert s.filters == {"room_ids": ["room_a", "room_b"]}
    assert SubscriptionSpec.from_json({**ROOMS, "filters": {}}).filters is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": " "}, "name"),
        ({"event_types": []}, "event_types"),
        ({"event_types": "TRAFFIC"}, "event_types"),
        ({"event_types": ["ROOM_OCCUPANCY_1M"]}, "unknown event type"),
        ({"filters": {"rooms": ["room_a"]}}, "unknown filter key"),
        ({"filters": {"room_ids": "room_a"}}, "filters.room_ids"),
        ({"filters": {"room_ids": []}}, "filters.room_ids"),
        ({"send_on_value_change": "yes"}, "send_on_value_change"),
        ({"http_timeout": 0}, "http_timeout"),
        ({"url": "https://elsewhere"}, "unknown key"),
    ],
)
def test_bad_declarations_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=field):
        spec(**changes)


def test_one_subscription_per_event_type_among_the_declared_ones() -> None:
    other = spec(name="other", event_types=["TRAFFIC", "ROOM_OCCUPANCY_1MIN"])
    with pytest.raises(ButlrConfigurationError, match="one subscription per event type per account"):
        plan_reconciliation([spec(), other], RECEIVER, [])
    with pytest.raises(ButlrConfigurationError, match="declared twice"):
        plan_reconciliation([spec(), spec()], RECEIVER, [])


def test_create_what_is_missing_and_leave_what_matches() -> None:
    plan = plan_reconciliation([spec()], RECEIVER, [])
    assert [s.name for s in plan.create] == ["rooms"] and plan.changes == 1
    plan = plan_reconciliation([spec()], RECEIVER, [remote()])
    assert plan.changes == 0 and [r.name for r in plan.unchanged] == ["rooms"]


@pytest.mark.parametrize(
    ("remote_changes", "changed"),
    [
        ({"event_types": ("ROOM_OCCUPANCY_1MIN", "TRAFFIC")}, ["event_types"]),
        ({"filters": {"room_ids": ["room_a"]}}, ["filters"]),
        ({"filters": None}, ["filters"]),
        ({"send_on_value_change": True}, ["send_on_value_change"]),
        ({"secret": "rotated-key-000000000000"}, ["auth"]),
        (
            {"endpoint_config": {"url": "http://old/butlr/webhooks", "http_timeout": 5, "api_key": None}},
            ["url", "http_timeout", "auth"],
        ),
    ],
)
def test_update_what_differs_naming_only_the_fields(
    remote_changes: dict[str, Any], changed: list[str]
) -> None:
    plan = plan_reconciliation([spec()], RECEIVER, [remote(**remote_changes)])
    [(current, declared, fields)] = plan.update
    assert fields == changed
    item = update_input(current.id, declared, RECEIVER, fields)
    assert item["id"] == "webhook_1"
    assert ("endpointConfig" in item) == bool({"url", "http_timeout", "auth"} & set(fields))


def test_undeclared_subscriptions_are_kept_or_deleted_and_a_taken_event_type_is_refused() -> None:
    traffic = remote("traffic", ("TRAFFIC",), webhook_id="webhook_2")
    plan = plan_reconciliation([spec()], RECEIVER, [remote(), traffic])
    assert [r.id for r in plan.undeclared] == ["webhook_2"] and plan.delete == []
    plan = plan_reconciliation([spec()], RECEIVER, [remote(), traffic], delete_undeclared=True)
    assert [r.id for r in plan.delete] == ["webhook_2"]
    legacy = remote("legacy", ("ROOM_OCCUPANCY_1MIN",), webhook_id="webhook_3")
    with pytest.raises(ButlrConfigurationError) as err:
        plan_reconciliation([spec()], RECEIVER, [legacy])
    assert "legacy" in str(err.value) and "one subscription per event type" in str(err.value)
    assert plan_reconciliation([spec()], RECEIVER, [legacy], delete_undeclared=True).create


def test_two_webhooks_with_a_declared_name_are_ambiguous() -> None:
    with pytest.raises(ButlrConfigurationError, match="two webhooks named"):
        plan_reconciliation([spec()], RECEIVER, [remote(), remote(webhook_id="webhook_9")])


def test_no_receiver_url_no_plan() -> None:
    receiver = ReceiverSettings.from_fields("r", host=None, login=None, password=KEY, extra={"org_id": ORG})
    with pytest.raises(ButlrConfigurationError, match="host"):
        plan_reconciliation([spec()], receiver, [])


def test_no_credential_in_a_summary_or_a_repr() -> None:
    rotated = remote(secret="rotated-key-000000000000", webhook_id="webhook_1")
    undeclared = remote("other", ("TRAFFIC",), webhook_id="webhook_2")
    plan = plan_reconciliation(
        [spec(), spec(name="new", event_types=["ZONE_OCCUPANCY_1MIN"])], RECEIVER, [rotated, undeclared]
    )
    text = json.dumps(plan.summary()) + repr(plan) + repr(rotated)
    for secret in (KEY, "rotated-key-000000000000"):
        assert secret not in text
    assert plan.summary()["updated"] == [{"name": "rooms", "id": "webhook_1", "changed": ["auth"]}]


def test_creation_sends_the_documented_fields_and_the_receivers_endpoint() -> None:
    item = create_input(spec(http_timeout=10), RECEIVER)
    assert item == {
        "name": "rooms",
        "eventTypes": ["ROOM_OCCUPANCY_1MIN"],
        "endpointConfig": {
            "url": URL,
            "apiKey": {"key": "X-Butlr-Webhook-Key", "value": KEY},
            "httpTimeout": 10,
        },
    }
