"""Asset events of the export: metadata attached through ``outlet_events``, read by a downstream DAG."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_butlr.assets import export_asset_uri, lineage_namespace, state_asset_uri
from airflow_provider_butlr.exceptions import ButlrConfigurationError
from tests.support.dag_registration import register_dags
from tests.system.test_example_dags import DAGS, load_dag, run


def asset_events(uri: str) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        )
        events = list(session.scalars(query))
        session.expunge_all()
        return events


def register_example_dags() -> None:
    """The example DAGs and their assets in the metadata DB (Airflow 3.0's dag.test() skips it)."""
    register_dags(DAGS)


@pytest.mark.airflow_independent
def test_export_asset_uri_convention(tmp_path: Path) -> None:
    assert export_asset_uri(str(tmp_path / "room_occupancy")) == f"file://{tmp_path}/room_occupancy"
    assert export_asset_uri("s3://bucket/butlr/room_occupancy/") == "s3://bucket/butlr/room_occupancy"
    assert export_asset_uri("relative/dir").startswith("file:///")
    with pytest.raises(ButlrConfigurationError, match="location"):
        export_asset_uri(" ")


@pytest.mark.airflow_independent
def test_state_asset_uri_and_namespace_hold_no_credentials() -> None:
    assert lineage_namespace("https://api.butlr.io") == "butlr://api.butlr.io"
    assert lineage_namespace("http://127.0.0.1:8080/base") == "butlr://127.0.0.1:8080"
    assert state_asset_uri("https://api.butlr.io", "rooms", "room_1", "empty") == (
        "butlr://api.butlr.io/rooms/room_1/empty"
    )
    with pytest.raises(ButlrConfigurationError, match="kind"):
        state_asset_uri("https://api.butlr.io", "sites", "s", "empty")


@pytest.mark.dag
def test_export_attaches_its_metadata_to_the_asset_event_and_the_weekly_report_reads_it(
    butlr_conn: Any, airflow_db: str
) -> None:
    emu = butlr_conn
    base = Path(os.environ["BUTLR_EXPORT_BASE_PATH"])  # the session's (tests/conftest.py)
    producer = load_dag("butlr_room_occupancy_asset")
    uri = f"file://{base}/room_occupancy"
    register_example_dags()
    export = producer.get_task("export_room_occupancy")
    assert [(o.name, o.uri) for o in export.outlets] == [("butlr_room_occupancy_daily", uri)]
    weekly = load_dag("butlr_weekly_occupancy_report")  # its own copy of the asset must match
    assert [(a.name, a.uri) for a in weekly.timetable.asset_condition.objects] == [
        ("butlr_room_occupancy_daily", uri)
    ]
    before = len(asset_events(uri))

    for logical in (pendulum.datetime(2025, 3, 10, 9, tz="UTC"), pendulum.datetime(2025, 3, 11, 9, tz="UTC")):
        run(producer, logical)
    events = asset_events(uri)[before:]
    assert len(events) == 2
    site_ids = sorted(site.id for site in emu.org.sites)
    for event, day in zip(events, ("2025-03-09", "2025-03-10"), strict=True):
        extra = event.extra
        path = base / "room_occupancy" / f"{day}.jsonl"
        rows = path.read_text().splitlines()
        assert extra["path"] == str(path)
        assert extra["rows"] == len(rows) > 0
        assert extra["day"] == day and extra["days"] == 1
        assert extra["format"] == "jsonl"
        assert sorted(extra["sites"]) == site_ids
        assert extra["measurements"] == ["room_occupancy"]
        assert extra["window_function"] == ["mean", "max"]
        assert extra["start"] < extra["stop"]  # the earliest local midnight to the latest one
        assert set(extra) >= {"path", "rows", "day", "start", "stop", "sites", "measurements", "format"}
        assert emu.client_secret not in json.dumps(extra)

    report_run = run("butlr_weekly_occupancy_report", pendulum.datetime(2025, 3, 11, 10, tz="UTC"))
    result = next(ti for ti in report_run.get_task_instances()).xcom_pull(task_ids="weekly_report")
    assert result["days"] == ["2025-03-09", "2025-03-10"]
    assert result["rows"] == sum(e.extra["rows"] for e in events)
    report = json.loads(Path(result["report"]).read_text())
    assert report["rooms"] and all(r["peak"] >= r["mean"] for r in report["rooms"].values())
