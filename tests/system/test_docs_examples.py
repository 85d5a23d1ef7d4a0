"""The python examples of docs/operators.md and docs/sensors.md are real: built in a DAG, then run.

Every ```python block is executed inside a DAG (no network may be touched while building). The
operator examples are then rendered and executed against the emulator (their ids are the
emulator's, seed 42); the sensor examples are rendered and planned, and those whose answer does
not depend on the wall clock are poked.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO

DOCS = REPO / "docs"
LOGICAL_DATE = datetime(2025, 3, 10, 9, tzinfo=UTC)
EXAMPLE_OUTPUT_ROOT = "/data/butlr"  # the docs' example output folder, redirected to tmp_path here


def python_blocks(name: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(encoding="utf-8"), flags=re.S)


def build(name: str, output_root: Path) -> tuple[Any, dict[str, Any]]:
    """Run every python block of ``docs/<name>`` inside one DAG; return it and its tasks by id."""
    from airflow.sdk import DAG

    with DAG(dag_id=f"docs_{Path(name).stem}", schedule=None, start_date=LOGICAL_DATE, catchup=False) as dag:
        for block in python_blocks(name):
            exec(compile(block.replace(EXAMPLE_OUTPUT_ROOT, str(output_root)), name, "exec"), {})
    return dag, dict(dag.task_dict)


def context_for(dag: Any, task: Any) -> dict[str, Any]:
    from airflow.sdk.execution_time import macros

    return {
        "dag": dag,
        "task": task,
        "ds": LOGICAL_DATE.date().isoformat(),
        "ds_nodash": LOGICAL_DATE.strftime("%Y%m%d"),
        "logical_date": LOGICAL_DATE,
        "data_interval_start": LOGICAL_DATE,
        "data_interval_end": LOGICAL_DATE,
        "macros": macros,
        "params": dict(task.params),
    }


def rendered(dag: Any, task: Any) -> tuple[Any, dict[str, Any]]:
    context = context_for(dag, task)
    task.render_template_fields(context)
    return task, context


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            "operators.md",
            {
                "export_occupancy",
                "export_counts",
                "room_traffic",
                "weekly_stats",
                "rooms_of_floor",
                "device_health",
                "site_names",
            },
        ),
        (
            "sensors.md",
            {
                "wait_for_day",
                "export_day",
                "wait_for_window",
                "room_empty",
                "over_capacity",
                "busy_afternoon",
                "new_site",
            },
        ),
    ],
)
def test_every_example_builds_in_a_dag_without_touching_the_network(
    butlr_conn: Any, tmp_path: Path, doc: str, expected: set[str]
) -> None:
    assert python_blocks(doc), f"docs/{doc} has no python example"
    _, tasks = build(doc, tmp_path)
    assert set(tasks) == expected
    assert butlr_conn.counters.total == 0


def test_operator_examples_run_against_the_emulator(butlr_conn: Any, tmp_path: Path) -> None:
    emu = butlr_conn
    dag, tasks = build("operators.md", tmp_path)
    results = {}
    for task_id, task in tasks.items():
        task, context = rendered(dag, task)
        results[task_id] = task.execute(context)

    export = results["export_occupancy"]
    assert export["path"] == f"{tmp_path}/occupancy/2025-03-09.csv" and export["format"] == "csv"
    lines = Path(export["path"]).read_text().splitlines()
    assert (
        lines[0].startswith("time,local_time,measurement,function,field,value,")
        and len(lines) == export["rows"] + 1
    )
    assert export["start"] == "2025-03-09T05:00:00Z" and export["stop"] == "2025-03-10T04:00:00Z"  # NY, 23 h

    counts = results["export_counts"]
    assert counts["path"] == f"{tmp_path}/counts/2025-03-09.parquet" and counts["format"] == "parquet"
    table = pq.read_table(counts["path"])
    assert table.num_rows == counts["rows"] > 0 and table.schema.field("value").type == pa.int64()

    traffic = results["room_traffic"]
    assert traffic and {r["measurement"] for r in traffic} == {"traffic_room_occupancy"}

    ny_floors = {
        f.id for f in emu.org.floors_by_id.values() if emu.org.site_timezone(f.id) == "America/New_York"
    }
    assert set(results["weekly_stats"]) == ny_floors
    assert results["rooms_of_floor"]["floors"]["data"][0]["rooms"]
    assert results["device_health"]["sensors"]["total"] > 0
    assert sorted(results["site_names"]) == sorted(s.name for s in emu.org.sites)


def test_sensor_examples_plan_and_the_past_windows_are_complete(butlr_conn: Any, tmp_path: Path) -> None:
    dag, tasks = build("sensors.md", tmp_path)
    export_day = tasks.pop("export_day")  # the operator the example chains after its sensor
    for task in tasks.values():
        assert task.deferrable is (task.task_id != "wait_for_window")
        task, context = rendered(dag, task)
        assert task.build_plan(context).validate().requests
    for task_id in ("wait_for_day", "wait_for_window", "busy_afternoon"):
        task, context = rendered(dag, tasks[task_id])
        assert task.poke(context), task_id
    task, context = rendered(dag, tasks["new_site"])
    assert not task.poke(context)  # the emulator has 3 sites, not more: the callable says no
    day = (datetime(2025, 3, 9, 5, tzinfo=UTC), datetime(2025, 3, 10, 4, tzinfo=UTC))  # NY, 23 h (DST)
    assert tasks["wait_for_day"].resolve_window(context)[:2] == day
    # the same three window arguments give the operator the same window
    export_day, context = rendered(dag, export_day)
    assert export_day._window(context, "America/New_York") == day
    assert tasks["wait_for_day"].downstream_task_ids == {"export_day"}


def test_readme_operator_and_sensor_examples_are_the_tested_ones() -> None:
    """The README repeats examples from docs/; each must be one of the blocks run above, verbatim."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    tested = python_blocks("operators.md") + python_blocks("sensors.md")
    examples = [
        block
        for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
        if "airflow_provider_butlr.operators" in block or "airflow_provider_butlr.sensors" in block
    ]
    assert len(examples) >= 7, "the README shows an example per operator and sensor"
    for block in examples:
        assert any(block.strip() in doc for doc in tested), f"README example not in docs/: {block[:80]}"


FIRST_DAG_FENCE = re.compile(r'```python title="dags/my_first_butlr_dag\.py"\n(.*?)```', flags=re.S)


@pytest.mark.dag
def test_readme_first_dag_walkthrough_runs_as_written(butlr_conn: Any, tmp_path: Path) -> None:
    """The README's "your first DAG" steps, with `airflow dags test` in a fresh Airflow home."""
    import os
    import subprocess
    import sys
    import textwrap

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = FIRST_DAG_FENCE.search(readme)
    assert match, "the README walkthrough's DAG file is missing"
    source = textwrap.dedent(match.group(1)).replace("/tmp/butlr", str(tmp_path / "out"))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "my_first_butlr_dag.py").write_text(source, encoding="utf-8")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    done = subprocess.run(
        [*airflow, "dags", "test", "my_first_butlr_dag", "2025-03-10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    import gzip

    exported = tmp_path / "out" / "2025-03-09.csv.gz"  # the walkthrough ends with a stored, compressed file
    lines = gzip.decompress(exported.read_bytes()).decode("utf-8").splitlines()
    assert lines[0].startswith("time,local_time,measurement,function,")
    # New York's March 9 2025 is a 23-hour DST day: one row per room (32 in the emulator's New York
    # site) and local hour, as the README says
    assert len(lines) - 1 == 32 * 23 == 736
