"""Daily asset inventory: the site tree, the tags and the health of every sensor and hive.

* ``topology``: sites -> buildings -> floors -> rooms/zones as flat tables (with each site's
  timezone), written to ``<base_path>/inventory/<day>/<table>.jsonl``;
* ``tags``: every tag with the floors, rooms and zones it is applied to (``ButlrGraphQLOperator``);
* ``device_health``: offline sensors and hives (hours since their last heartbeat) and battery
  status, placeholder test devices excluded; the task fails when more than ``max_offline_share``
  of the sensors or hives are offline, or more than ``max_critical_batteries`` batteries are past
  their change-by date (both DAG params);
* ``write_inventory``: tags and the health report as JSON next to the tables.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_butlr.operators.butlr import ButlrDeviceHealthOperator, ButlrGraphQLOperator

DEFAULT_BASE_PATH = os.environ.get("BUTLR_EXPORT_BASE_PATH") or os.path.join(
    tempfile.gettempdir(), "butlr-exports"
)

TAGS_QUERY = """
query Tags { tags { id name rooms { id name } zones { id name } floors { id name } } }
"""


def _write(target: str, text: str) -> None:
    """Write a small text file to a local path or an ObjectStoragePath URI."""
    if "://" in target:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        path = ObjectStoragePath(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(text)


@dag(
    dag_id="butlr_asset_inventory",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "base_path": Param(DEFAULT_BASE_PATH, type="string", description="Where the inventory files go."),
        "max_offline_share": Param(0.5, type="number", minimum=0, maximum=1),
        "max_critical_batteries": Param(100, type="integer", minimum=0),
    },
    render_template_as_native_obj=True,
    tags=["butlr", "example", "inventory"],
    doc_md=__doc__,
)
def butlr_asset_inventory() -> None:
    @task
    def topology(base_path: str, ds: str | None = None) -> dict[str, int]:
        """Dimension tables of the site tree, one JSON Lines file per table."""
        from airflow_provider_butlr.hooks.butlr import ButlrHook

        with ButlrHook() as hook:
            tables = hook.get_topology().tables()
        folder = f"{base_path.rstrip('/')}/inventory/{ds}"
        for name, records in tables.items():
            _write(f"{folder}/{name}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        counts = {name: len(records) for name, records in tables.items()}
        print(f"topology: {counts} -> {folder}")
        return counts

    tags = ButlrGraphQLOperator(task_id="tags", query=TAGS_QUERY)

    health = ButlrDeviceHealthOperator(
        task_id="device_health",
        max_offline_share="{{ params.max_offline_share }}",
        max_critical_batteries="{{ params.max_critical_batteries }}",
    )

    @task
    def write_inventory(
        base_path: str, tags: dict[str, Any], health: dict[str, Any], ds: str | None = None
    ) -> str:
        folder = f"{base_path.rstrip('/')}/inventory/{ds}"
        _write(f"{folder}/tags.json", json.dumps(tags["tags"], indent=2))
        _write(f"{folder}/device_health.json", json.dumps(health, indent=2))
        print(
            f"{len(tags['tags'])} tags; {health['sensors']['offline']} of {health['sensors']['total']} sensors and "
            f"{health['hives']['offline']} of {health['hives']['total']} hives offline -> {folder}"
        )
        return folder

    base = "{{ params.base_path }}"
    topology(base_path=base) >> write_inventory(base_path=base, tags=tags.output, health=health.output)


butlr_asset_inventory()
