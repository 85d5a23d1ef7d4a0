"""OpenLineage for the Butlr operators: naming (unit) and the events a DAG run emits (file transport).

Needs the OpenLineage provider (``airflow-provider-butlr[openlineage]``); skipped without it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest

pytest.importorskip("airflow.providers.openlineage", reason="the OpenLineage provider is not installed")

from airflow_provider_butlr.lineage import build_lineage, graphql_dataset_name, output_name
from tests.conftest import TEST_CLIENT_SECRET
from tests.system.test_assets import register_example_dags
from tests.system.test_example_dags import run


def test_output_names_follow_openlineage_file_and_object_store_naming(tmp_path: Path) -> None:
    assert output_name(str(tmp_path / "a.jsonl")) == ("file", str(tmp_path / "a.jsonl"))
    assert output_name(f"file://{tmp_path}/a.jsonl") == ("file", f"{tmp_path}/a.jsonl")
    assert output_name("s3://bucket/butlr/2025-03-09/a.jsonl") == ("s3://bucket", "butlr/2025-03-09/a.jsonl")
    assert output_name("gcs://bucket/a.csv") == ("gs://bucket", "a.csv")


def test_graphql_dataset_names() -> None:
    assert graphql_dataset_name("query Sites { sites { data { id } } }") == "graphql/Sites"
    assert graphql_dataset_name("{ sensors { data { id } } }") == "graphql/sensors"
    assert graphql_dataset_name("{ a }", "Named") == "graphql/Named"


def test_row_count_and_size_in_the_output_statistics(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a":1}\n{"a":2}\n')
    lineage = build_lineage("butlr://api.butlr.io", ["reporting/traffic"], output_path=str(path), rows=2)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("butlr://api.butlr.io", "reporting/traffic")]
    statistics = lineage.outputs[0].outputFacets["outputStatistics"]
    assert (statistics.rowCount, statistics.size) == (2, path.stat().st_size)


def listener_managers() -> list[Any]:
    """Airflow's listener managers: the core one and (3.1+) the Task SDK's, which runs task hooks."""
    from airflow.listeners.listener import get_listener_manager

    managers = [get_listener_manager()]
    try:
        from airflow.sdk.listener import get_listener_manager as get_sdk_listener_manager
    except ImportError:  # Airflow 3.0: one manager
        return managers
    sdk_manager = get_sdk_listener_manager()
    return managers if sdk_manager is managers[0] else [*managers, sdk_manager]


@pytest.fixture
def openlineage_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """OpenLineage on, writing every event as a JSON line to a file; the listener registered."""
    from airflow.providers.openlineage import conf as ol_conf
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener

    events = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv(
        "AIRFLOW__OPENLINEAGE__TRANSPORT",
        json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
    )
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")  # no fork in the test process

    def clear_conf_caches() -> None:
        for value in vars(ol_conf).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()

    clear_conf_caches()
    listener = get_openlineage_listener()
    listener.adapter._client = None  # built from the transport above on first use
    added = []
    for manager in listener_managers():  # the OpenLineage plugin may have loaded while it was off
        if not manager.pm.is_registered(listener):
            manager.add_listener(listener)
            added.append(manager)
    try:
        yield events
    finally:
        for manager in added:
            manager.pm.unregister(listener)
        listener.adapter._client = None
        monkeypatch.undo()
        clear_conf_caches()


def test_stats_lineage_names_each_measurement(butlr_conn: Any) -> None:
    from airflow_provider_butlr.operators.butlr import ButlrStatsOperator

    operator = ButlrStatsOperator(
        task_id="stats",
        measurements=["occupancy_avg_presence", "occupancy_median_presence"],
        items=["space_1"],
    )
    lineage = operator.get_openlineage_facets_on_complete(None)
    namespace = f"butlr://127.0.0.1:{butlr_conn.port}"
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        (namespace, "stats/occupancy_avg_presence"),
        (namespace, "stats/occupancy_median_presence"),
    ]
    assert lineage.outputs == []


@pytest.mark.dag
def test_dag_runs_emit_butlr_inputs_and_the_written_file_with_its_row_count(
    butlr_conn: Any, airflow_db: str, tmp_path: Path, openlineage_file: Path
) -> None:
    emu = butlr_conn
    register_example_dags()  # Airflow 3.0's dag.test() does not register the export's asset
    run("butlr_room_occupancy_asset", pendulum.datetime(2025, 3, 10, 9, tz="UTC"))
    run("butlr_asset_inventory", pendulum.datetime(2025, 3, 10, tz="UTC"), base_path=str(tmp_path / "inv"))
    output = Path(os.environ["BUTLR_EXPORT_BASE_PATH"]) / "room_occupancy" / "2025-03-09.jsonl"

    text = openlineage_file.read_text()
    events = [json.loads(line) for line in text.splitlines()]
    by_task: dict[tuple[str, str], dict[str, Any]] = {
        (e["job"]["name"].rsplit(".", 1)[-1], e["eventType"]): e for e in events if "job" in e
    }
    namespace = f"butlr://127.0.0.1:{emu.port}"

    def inputs(task: str, kind: str = "COMPLETE") -> list[tuple[str, str]]:
        return [(d["namespace"], d["name"]) for d in by_task[(task, kind)]["inputs"]]

    assert inputs("export_room_occupancy", "START") == [(namespace, "reporting/room_occupancy")]
    assert inputs("export_room_occupancy") == [(namespace, "reporting/room_occupancy")]
    written = next(
        d for d in by_task[("export_room_occupancy", "COMPLETE")]["outputs"] if d["namespace"] == "file"
    )
    assert written["name"] == str(output)
    rows = len(output.read_text().splitlines())
    assert written["outputFacets"]["outputStatistics"]["rowCount"] == rows > 0
    assert written["outputFacets"]["outputStatistics"]["size"] == output.stat().st_size

    assert inputs("tags") == [(namespace, "graphql/Tags")]
    assert inputs("device_health") == [(namespace, "graphql/sensors"), (namespace, "graphql/hives")]
    assert TEST_CLIENT_SECRET not in text
    for token in emu.issued_tokens:
        assert token not in text
