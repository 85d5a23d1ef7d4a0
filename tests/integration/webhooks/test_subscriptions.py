"""Subscriptions as code against the emulator's GraphQL: create, nothing twice, update what differs,
delete what is not declared, Butlr's one-subscription-per-event-type rule, and no secret anywhere."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrGraphQLError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.hooks.webhooks import receiver_settings
from airflow_provider_butlr.operators.butlr import ButlrWebhookSubscriptionOperator
from tests.support.webhooks import HEADER, KEY, receiver_connection

GRAPHQL = "/api/v3/graphql"
URL = "https://airflow.example.com/butlr/webhooks"
ROOMS = {
    "name": "airflow-rooms",
    "event_types": ["ROOM_OCCUPANCY_1MIN"],
    "filters": {"room_ids": ["room_2aVq9x4BafE7tFacPaWvCiEOfIJ"]},
    "http_timeout": 10,
}
TRAFFIC = {"name": "airflow-traffic", "event_types": ["TRAFFIC"], "send_on_value_change": True}


@pytest.fixture
def butlr(butlr_conn: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The emulator, ``butlr_default`` pointing at it, the receiver's connection set."""
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT", receiver_connection(URL, butlr_conn.org.id))
    return butlr_conn


def reconcile(*specs: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    with ButlrHook() as hook:
        return hook.reconcile_webhooks(list(specs), receiver_settings(), **kwargs)


def stored(emu: Any) -> dict[str, dict[str, Any]]:
    return {hook["name"]: hook for hook in emu.webhooks.all()}


def graphql_calls(emu: Any) -> list[str]:
    """The operation names of the GraphQL requests so far."""
    return [
        (r.body_json or {}).get("query", "").split("(")[0].split("{")[0].split()[-1]
        for r in emu.counters.log
        if r.path == GRAPHQL
    ]


def test_create_then_nothing_twice_then_update_only_what_differs(
    butlr: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = butlr
    first = reconcile(ROOMS, TRAFFIC)
    assert sorted(first["created"]) == ["airflow-rooms", "airflow-traffic"] and first["org_ids"] == [
        emu.org.id
    ]
    hooks = stored(emu)
    rooms, traffic = hooks["airflow-rooms"], hooks["airflow-traffic"]
    assert rooms["endpoint_config"] == {
        "url": URL,
        "http_timeout": 10,
        "api_key": {"key": HEADER, "value": KEY},
        "basic_auth": None,
    }
    assert rooms["filters"] == ROOMS["filters"] and traffic["send_on_value_change"] is True

    # a daily run with nothing changed: one read, no mutation, nothing touched
    before = len(graphql_calls(emu))
    again = reconcile(ROOMS, TRAFFIC)
    assert graphql_calls(emu)[before:] == ["ButlrWebhooks"]
    assert again["created"] == again["updated"] == again["deleted"] == []
    assert sorted(again["unchanged"]) == ["airflow-rooms", "airflow-traffic"]
    assert stored(emu) == hooks

    # the declaration changes (filters), the key is rotated in the connection: one update each
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT", receiver_connection(URL, emu.org.id, password="rotated-" + KEY)
    )
    moved = {**ROOMS, "filters": {"room_ids": ["room_2joyX7ewAWbxvkgiOfNtRF31Ya0"]}}
    result = reconcile(moved, TRAFFIC)
    changed = {u["name"]: u["changed"] for u in result["updated"]}
    assert changed == {"airflow-rooms": ["auth", "filters"], "airflow-traffic": ["auth"]}
    now = stored(emu)
    assert now["airflow-rooms"]["id"] == rooms["id"] and now["airflow-rooms"]["filters"] == moved["filters"]
    assert {h["endpoint_config"]["api_key"]["value"] for h in now.values()} == {"rotated-" + KEY}


def test_undeclared_subscriptions_kept_refused_or_deleted(butlr: Any) -> None:
    emu = butlr
    legacy = emu.subscribe(
        "https://old.example.com/hook", ["ROOM_OCCUPANCY_1MIN", "FLOOR_OCCUPANCY_1MIN"], name="legacy"
    )
    other = emu.subscribe("https://old.example.com/zones", ["ZONE_OCCUPANCY_1MIN"], name="zones")
    with pytest.raises(ButlrConfigurationError) as err:
        reconcile(ROOMS)
    assert "legacy" in str(err.value) and "one subscription per event type per account" in str(err.value)
    assert set(stored(emu)) == {"legacy", "zones"}  # refused before any change

    kept = reconcile(TRAFFIC)
    assert {w["name"] for w in kept["undeclared_kept"]} == {"legacy", "zones"}
    result = reconcile(ROOMS, TRAFFIC, delete_undeclared=True)
    assert {w["id"] for w in result["deleted"]} == {legacy["id"], other["id"]}
    assert result["created"] == ["airflow-rooms"] and set(stored(emu)) == {"airflow-rooms", "airflow-traffic"}


def test_moving_an_event_type_between_declared_subscriptions(butlr: Any) -> None:
    reconcile(ROOMS, TRAFFIC)
    swapped = [{**ROOMS, "event_types": ["TRAFFIC"]}, {**TRAFFIC, "event_types": ["ROOM_OCCUPANCY_1MIN"]}]
    result = reconcile(*swapped)
    assert sorted(u["name"] for u in result["updated"]) == ["airflow-rooms", "airflow-traffic"]
    assert stored(butlr)["airflow-rooms"]["event_types"] == ["TRAFFIC"]


def test_one_subscription_per_event_type_refused_before_any_request(butlr: Any) -> None:
    twice = {**TRAFFIC, "event_types": ["TRAFFIC", "ROOM_OCCUPANCY_1MIN"]}
    with pytest.raises(ButlrConfigurationError, match="one subscription per event type per account"):
        ButlrWebhookSubscriptionOperator(task_id="t", subscriptions=[ROOMS, twice])
    assert butlr.counters.total == 0


def test_plan_only_changes_nothing(butlr: Any) -> None:
    result = reconcile(ROOMS, dry_run=True)
    assert result["created"] == ["airflow-rooms"] and result["dry_run"] is True
    assert stored(butlr) == {}


def test_a_receiver_of_another_organisation_is_refused(butlr: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT", receiver_connection(URL, "org_2notTheEmulatorsOrg000000")
    )
    with pytest.raises(ButlrConfigurationError, match="accepts only org_2notTheEmulatorsOrg000000"):
        reconcile(ROOMS)


def test_the_operator_returns_names_and_fields_never_a_credential(
    butlr: Any, caplog: pytest.LogCaptureFixture
) -> None:
    butlr.subscribe(
        "https://old.example.com/hook",
        ["TRAFFIC"],
        name="old",
        api_key={"key": "X-Old", "value": "old-secret-" + KEY},
    )
    operator = ButlrWebhookSubscriptionOperator(
        task_id="subscribe", subscriptions=[ROOMS], delete_undeclared=True
    )
    with caplog.at_level(logging.DEBUG):
        result = operator.execute(context={})
    assert result["created"] == ["airflow-rooms"] and result["deleted"][0]["name"] == "old"
    text = json.dumps(result) + caplog.text
    assert KEY not in text and "old-secret" not in text
    assert "1 created" in caplog.text


def test_a_refused_mutation_never_shows_the_key(butlr: Any) -> None:
    """Butlr's error may echo the input: the key was registered with the scrubber when it was read."""
    butlr.add_fault(
        {
            "path": GRAPHQL,
            "kind": "status",
            "status": 200,
            "body": json.dumps(
                {
                    "errors": [
                        {"message": f"bad input: apiKey {KEY}", "extensions": {"code": "BAD_USER_INPUT"}}
                    ]
                }
            ),
            "times": 5,
        }
    )
    with pytest.raises(ButlrGraphQLError) as err:
        reconcile(ROOMS)
    assert KEY not in str(err.value) and "***" in str(err.value)


def test_receiver_connection_errors_name_the_field(butlr: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT",
        json.dumps({"conn_type": "generic", "host": URL, "password": KEY}),
    )
    with pytest.raises(ButlrConfigurationError, match=r"extra\.org_id"):
        reconcile(ROOMS)
    monkeypatch.delenv("AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT")
    with pytest.raises(ButlrConfigurationError, match="butlr_webhook_default"):
        reconcile(ROOMS)
