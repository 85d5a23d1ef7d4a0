"""Find your ids: print the organisation's sites, buildings, floors, rooms and zones with their ids.

Every example of this provider uses the bundled emulator's ids (``site_2GwebAjANzdYgqmE1JGDwsJeOuS``).
Run this DAG once with your real ``butlr_default`` connection (``airflow dags test butlr_find_my_ids``)
and read the tree in the task log of ``list_ids``; the same tree is the task's XCom. The ids go into
``sites=[...]``, ``floors=[...]``, ``rooms=[...]`` or ``zones=[...]`` of the operators and sensors.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

# Snake_case fields only: Butlr's camelCase resolvers fail on some objects (docs/operators.md).
TREE_QUERY = """
query FindMyIds {
  sites { data { id name timezone
    buildings { id name
      floors { id name
        rooms { id name }
        zones { id name room_id } } } } }
}
"""


def tree_lines(sites: list[dict[str, Any]]) -> list[str]:
    """The tree as indented lines: kind, id, name (and a site's timezone)."""
    lines = []
    for site in sites:
        lines.append(f"site {site['id']}  {site['name']}  ({site.get('timezone') or 'no timezone: UTC'})")
        for building in site.get("buildings") or []:
            lines.append(f"  building {building['id']}  {building['name']}")
            for floor in building.get("floors") or []:
                lines.append(f"    floor {floor['id']}  {floor['name']}")
                for room in floor.get("rooms") or []:
                    lines.append(f"      room {room['id']}  {room['name']}")
                for zone in floor.get("zones") or []:
                    lines.append(f"      zone {zone['id']}  {zone['name']}")
    return lines


@dag(
    dag_id="butlr_find_my_ids",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["butlr", "example"],
)
def butlr_find_my_ids() -> None:
    @task
    def list_ids() -> list[dict[str, Any]]:
        """One GraphQL request through the connection; the tree printed, and returned as XCom."""
        from airflow_provider_butlr.hooks.butlr import ButlrHook

        with ButlrHook() as hook:
            sites = hook.graphql(TREE_QUERY)["sites"]["data"] or []
        for line in tree_lines(sites):
            print(line)
        if not sites:
            raise ValueError("the Butlr connection works but sees no site")
        return sites

    list_ids()


butlr_find_my_ids()
