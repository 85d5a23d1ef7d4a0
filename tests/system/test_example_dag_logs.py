"""A successful example DAG run logs no error-level line (issue 16: "Examples must run clean")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

from tests.system.test_example_dags import NEW_YORK_DAY_END, run

pytestmark = pytest.mark.dag


def error_lines(text: str) -> list[str]:
    """Error-level lines in Airflow's console output (structlog's ``[error   ]`` and stdlib ``ERROR``)."""
    return [line for line in text.splitlines() if "[error" in line or " ERROR " in line]


@pytest.mark.newest_airflow
def test_daily_export_summary_reads_the_mapped_exports_without_error_lines(
    butlr_conn: Any, airflow_db: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    butlr_conn.clock.set(NEW_YORK_DAY_END + timedelta(hours=2))  # every site's day is final
    capfd.readouterr()
    dag_run = run(
        "butlr_daily_occupancy_export",
        pendulum.datetime(2025, 3, 10, 9, tz="UTC"),
        base_path=str(tmp_path / "exports"),
    )
    out, err = capfd.readouterr()
    summary = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "summary")
    assert summary.state == "success"
    assert "XCom not found" not in out + err
    assert error_lines(out + err) == []
