"""The webhook example pair through Airflow: the subscription DAG against the emulator's GraphQL, and
the push twin of the room-empty DAG fed by the receiver from the emulator's deliveries."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest

from tests.conftest import REPO
from tests.integration.triggers.test_event_trigger import Events
from tests.support.dag_registration import register_dags
from tests.support.webhook_push import HOLD, Push, find_crossing, push, push_emulator
from tests.support.webhooks import KEY, asset_events, receiver_connection
from tests.system.test_example_dags import load_dag, run

pytestmark = pytest.mark.dag
__all__ = ["push", "push_emulator"]  # the fixtures

SUBSCRIPTIONS_DAG = "butlr_webhook_subscriptions"
PUSH_DAG = "butlr_room_empty_webhooks"


def test_the_examples_default_room_is_pushed_by_the_emulator(emulator: Any) -> None:
    from airflow_provider_butlr.testing.timeseries.series import series_assets
    from example_dags.butlr_room_empty_webhooks import EMULATOR_ROOM
    from example_dags.butlr_webhook_subscriptions import EMULATOR_ROOM as SUBSCRIBED

    assert EMULATOR_ROOM == SUBSCRIBED
    assert EMULATOR_ROOM in series_assets(emulator.org, "room_occupancy", emulator.config.seed)


def test_the_subscription_dag_creates_once_then_changes_nothing(
    butlr_conn: Any, airflow_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = butlr_conn
    url = "https://airflow.example.com/butlr/webhooks"
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT", receiver_connection(url, emu.org.id))
    run(SUBSCRIPTIONS_DAG, pendulum.datetime(2025, 11, 11, tz="UTC"))
    [hook] = emu.webhooks.all()
    assert (hook["name"], hook["event_types"], hook["endpoint_config"]["url"]) == (
        "airflow-room-occupancy",
        ["ROOM_OCCUPANCY_1MIN"],
        url,
    )
    mutations = sum(r.path == "/api/v3/graphql" and "mutation" in str(r.body_json) for r in emu.counters.log)
    dag_run = run(SUBSCRIPTIONS_DAG, pendulum.datetime(2025, 11, 12, tz="UTC"))
    assert (
        sum(r.path == "/api/v3/graphql" and "mutation" in str(r.body_json) for r in emu.counters.log)
        == mutations
    )
    [ti] = dag_run.get_task_instances()
    summary = ti.xcom_pull(task_ids="reconcile_subscriptions")
    assert summary["unchanged"] == ["airflow-room-occupancy"] and KEY not in str(summary)


def test_the_push_twin_runs_on_the_receivers_crossing_event(
    push: Push, monkeypatch: pytest.MonkeyPatch, airflow_db: str
) -> None:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    crossing = find_crossing(push.emu)
    monkeypatch.setenv("BUTLR_WEBHOOK_ROOMS", crossing.room)
    monkeypatch.setenv("BUTLR_WEBHOOK_EMPTY_MINUTES", str(HOLD))
    register_dags(
        REPO / "example_dags"
    )  # the DAG's asset (with its condition) as the DAG processor writes it
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == PUSH_DAG).values(is_paused=False))
    dag = load_dag(PUSH_DAG)
    [asset] = dag.timetable.asset_condition.objects
    assert asset.uri == f"butlr://api.butlr.io/rooms/{crossing.room}/empty"
    assert asset.extra == {"butlr_condition": {"op": "<=", "threshold": 0.0, "for_minutes": HOLD}}

    push.emu.clock.set(crossing.occupied + dt.timedelta(seconds=30), tick=False)
    push.subscribe(["ROOM_OCCUPANCY_1MIN"], crossing.room)
    push.minutes(len(crossing.values))
    [recorded] = asset_events(asset.uri)
    with create_session() as session:  # the scheduler creates the run from this queue entry
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id)).all()
    assert queued == [PUSH_DAG]

    cleaning = dag.get_task("request_cleaning").python_callable
    [request] = cleaning(triggering_asset_events=Events([(asset, [SimpleNamespace(extra=recorded)])]))
    assert request["room"] == crossing.room and request["room_name"]
    assert request["empty_since"] == crossing.empty.strftime("%Y-%m-%dT%H:%M:%SZ")
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == PUSH_DAG).values(is_paused=True))


def test_the_push_twin_runs_by_hand(emulator: Any, airflow_db: str) -> None:
    run(PUSH_DAG, pendulum.datetime(2025, 11, 11, tz="UTC"))


def test_the_docs_examples_build_without_touching_the_network(emulator: Any) -> None:
    import re

    text = (REPO / "docs" / "webhooks.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/webhooks.md", "exec"), {"__name__": "docs_example"})
    assert emulator.counters.total == 0
