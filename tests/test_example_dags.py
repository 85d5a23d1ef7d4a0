"""Every example DAG runs end to end with ``dag.test()`` against the emulator (SQLite metadata DB)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pendulum
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.dag
DAGS = REPO / "example_dags"


def load_dag(dag_id: str) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(DAGS))  # examples are off (AIRFLOW__CORE__LOAD_EXAMPLES=False)
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in {DAGS}"
    return dag


def run(dag_id: str, logical_date: pendulum.DateTime, **conf: Any) -> Any:
    dag_run = load_dag(dag_id).test(logical_date=logical_date, run_conf=conf or None)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    return dag_run


def test_example_dags_import_without_touching_the_network(emulator: Any, airflow_db: str) -> None:
    for dag_id in ("butlr_quickstart", "butlr_daily_occupancy_export", "butlr_asset_inventory"):
        load_dag(dag_id)
    assert emulator.counters.total == 0


def test_quickstart(butlr_conn: Any, airflow_db: str) -> None:
    run("butlr_quickstart", pendulum.datetime(2025, 3, 10, 9, tz="UTC"))
    assert butlr_conn.counters.logins == 1


def test_daily_occupancy_export_writes_every_sites_local_day(butlr_conn: Any, airflow_db: str, tmp_path: Path) -> None:
    emu = butlr_conn
    base = tmp_path / "exports"
    run("butlr_daily_occupancy_export", pendulum.datetime(2025, 3, 10, 9, tz="UTC"), base_path=str(base))
    day = base / "2025-03-09"  # the day before the logical date; a 23-hour day in New York
    summary = json.loads((day / "summary.json").read_text())
    assert summary["day"] == "2025-03-09"
    assert len(summary["files"]) == 3 * len(emu.org.sites)
    for site in emu.org.sites:
        for export in ("occupancy", "traffic", "presence_time"):
            path = day / site.id / f"{export}.jsonl"
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            entry = next(f for f in summary["files"] if f["path"] == str(path))
            assert entry["rows"] == len(rows) > 0, path
        hours = {r["time"] for r in rows}
        assert len(hours) == {"America/New_York": 23, "Europe/Berlin": 24, None: 24}[site.timezone]
        occupancy = [json.loads(line) for line in (day / site.id / "occupancy.jsonl").read_text().splitlines()]
        assert {(r["measurement"], r["function"]) for r in occupancy} == {
            (m, f) for m in ("room_occupancy", "floor_occupancy") for f in ("mean", "max")
        }
    floors = {f.id for f in emu.org.floors_by_id.values()}
    assert set(summary["weekly_stats"]) <= floors and summary["weekly_stats"]
    assert not list(base.rglob(".*.tmp"))


def test_asset_inventory(butlr_conn: Any, airflow_db: str, tmp_path: Path) -> None:
    emu = butlr_conn
    base = tmp_path / "exports"
    run("butlr_asset_inventory", pendulum.datetime(2025, 3, 10, tz="UTC"), base_path=str(base))
    folder = base / "inventory" / "2025-03-10"
    rooms = (folder / "rooms.jsonl").read_text().splitlines()
    assert len(rooms) == len(emu.org.rooms_by_id)
    assert {json.loads(r)["timezone"] for r in rooms} == {s.timezone or "UTC" for s in emu.org.sites}
    tags = json.loads((folder / "tags.json").read_text())
    assert {t["id"] for t in tags} == set(emu.org.tags_by_id)
    health = json.loads((folder / "device_health.json").read_text())
    real = [s for s in emu.org.sensors_by_id.values() if not s.is_placeholder]
    assert health["sensors"]["total"] == len(real)
    assert {s["id"] for s in health["offline_sensors"]} == {s.id for s in real if not s.is_online}
