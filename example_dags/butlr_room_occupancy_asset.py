"""Assets: a daily room-occupancy export that produces an asset, with its metadata in each event.

``butlr_room_occupancy_asset`` exports yesterday's hourly room occupancy (mean and max, every site,
each in its local day) to ``<base>/room_occupancy/<day>.jsonl`` and lists the asset
``ROOM_OCCUPANCY`` in the export's ``outlets``: the operator attaches what it wrote to the asset
event (``path``, ``rows``, ``day``, ``start``/``stop``, ``sites``, ``measurements``, ``format``...).
``butlr_weekly_occupancy_report`` (its own file) is scheduled on that asset.

Asset URI convention (docs/assets-and-lineage.md): the export's storage location without the day,
here ``file://<base>/room_occupancy`` (or ``s3://bucket/butlr/room_occupancy``); the day's file is in
the event. The base path is env ``BUTLR_EXPORT_BASE_PATH`` (else a temp directory), read when the
DAG file is parsed: an asset's URI is fixed at parse time (both DAG files must see the same value).
"""

from __future__ import annotations

import os
import tempfile

import pendulum
from airflow.sdk import Asset, dag, task

from airflow_provider_butlr.assets import export_asset_uri
from airflow_provider_butlr.operators.butlr import ButlrReportingOperator

BASE_PATH = os.environ.get("BUTLR_EXPORT_BASE_PATH") or os.path.join(tempfile.gettempdir(), "butlr-exports")
FOLDER = f"{BASE_PATH.rstrip('/')}/room_occupancy"
ROOM_OCCUPANCY = Asset(name="butlr_room_occupancy_daily", uri=export_asset_uri(FOLDER))
DAY = "{{ macros.ds_add(ds, -1) }}"  # yesterday of the run's logical date


@dag(
    dag_id="butlr_room_occupancy_asset",
    schedule="0 9 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["butlr", "example", "assets"],
    doc_md=__doc__,
)
def butlr_room_occupancy_asset() -> None:
    @task
    def site_ids() -> list[str]:
        """Every site the connection sees (each is exported in its own local day)."""
        from airflow_provider_butlr.hooks.butlr import ButlrHook

        with ButlrHook() as hook:
            return [site["id"] for site in hook.get_topology().sites]

    ButlrReportingOperator(
        task_id="export_room_occupancy",
        measurements=["room_occupancy"],
        sites=site_ids(),
        local_day=DAY,
        window_every="1h",
        window_function=["mean", "max"],
        output_path=f"{FOLDER}/{DAY}.jsonl",
        outlets=[ROOM_OCCUPANCY],  # the event carries path, rows, day, sites, measurements...
    )


butlr_room_occupancy_asset()
