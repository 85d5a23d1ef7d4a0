"""Parse-cost baseline: the same DAG shape, importing only ``airflow.sdk``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, BaseOperator


class Noop(BaseOperator):
    """Stands in for a provider operator: constructed at parse time, never run here."""

    def execute(self, context: Any) -> None:
        return None


with DAG("parse_baseline", schedule="@daily", start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False):
    wait = Noop(task_id="wait_for_complete_data")
    export = Noop(task_id="export_occupancy")
    call = Noop(task_id="call_api")
    wait >> export >> call
