"""Parse-cost subject: the same DAG shape as parse_baseline.py, built from the provider's operators."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG

from airflow_provider_butlr.operators.butlr import ButlrOperator, ButlrReportingOperator
from airflow_provider_butlr.sensors.butlr import ButlrDataCompleteSensor

ROOMS = ["room_2Gd6QSxsGVBurIdb9lXmW0K1vsp", "room_2bKNIO5tuyZAN8IU3QQU4FFcaC6"]

with DAG("parse_butlr", schedule="@daily", start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False):
    wait = ButlrDataCompleteSensor(task_id="wait_for_complete_data", rooms=ROOMS, deferrable=True)
    export = ButlrReportingOperator(
        task_id="export_occupancy",
        measurements=["room_occupancy"],
        rooms=ROOMS,
        output_path="/tmp/butlr/{{ ds }}.jsonl",
    )
    call = ButlrOperator(
        task_id="call_api",
        endpoint="/api/v3/graphql",
        method="POST",
        json={"query": "{ sites { data { id } } }"},
    )
    wait >> export >> call
