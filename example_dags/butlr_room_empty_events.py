"""Event-driven: request a cleaning when a room has been empty for a while (Airflow >= 3.0).

Each watched room is an asset ``butlr://<host>/rooms/<room id>/empty`` with an ``AssetWatcher``
whose ``ButlrOccupancyEventTrigger`` polls Butlr in the triggerer and fires once per crossing:
when the room's occupancy has been 0 for ``BUTLR_EVENT_EMPTY_MINUTES`` minutes after someone was
there. The DAG runs for every such event (any of the rooms) and reads which room emptied, and
since when, from ``triggering_asset_events``.

Configuration (read when the file is parsed: an asset and its watcher are fixed at parse time):

* ``BUTLR_EVENT_ROOMS``: comma-separated room ids (default: a room of the bundled emulator's
  default organisation, so ``scripts/demo.sh`` works as is);
* ``BUTLR_EVENT_SITE``: the rooms' site id; when set, the watchers share one poll of the site
  (Airflow >= 3.3);
* ``BUTLR_EVENT_EMPTY_MINUTES`` (default 15) and ``BUTLR_EVENT_POLL_INTERVAL`` seconds (default 60);
* ``BUTLR_EVENT_ASSET_HOST``: the host in the asset URIs (default ``api.butlr.io``).

The connection is ``butlr_default`` (e.g. ``AIRFLOW_CONN_BUTLR_DEFAULT`` in every component's
environment, the triggerer's included).
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetAny, AssetWatcher, dag, task

from airflow_provider_butlr.assets import state_asset_uri
from airflow_provider_butlr.triggers.occupancy_events import ButlrOccupancyEventTrigger

EMULATOR_ROOM = "room_2joyX7ewAWbxvkgiOfNtRF31Ya0"  # a presence-covered room of the emulator's seed 42
ROOMS = [r.strip() for r in os.environ.get("BUTLR_EVENT_ROOMS", EMULATOR_ROOM).split(",") if r.strip()]
SITE = os.environ.get("BUTLR_EVENT_SITE") or None
EMPTY_MINUTES = int(os.environ.get("BUTLR_EVENT_EMPTY_MINUTES", "15"))
POLL_INTERVAL = float(os.environ.get("BUTLR_EVENT_POLL_INTERVAL", "60"))
ASSET_HOST = os.environ.get("BUTLR_EVENT_ASSET_HOST", "api.butlr.io")


def room_empty_asset(room: str) -> Asset:
    return Asset(
        name=f"butlr_room_empty_{room}",
        uri=state_asset_uri(ASSET_HOST, "rooms", room, "empty"),
        watchers=[
            AssetWatcher(
                name=f"butlr_room_empty_{room}",
                trigger=ButlrOccupancyEventTrigger(
                    rooms=[room],
                    op="<=",
                    threshold=0,
                    for_minutes=EMPTY_MINUTES,
                    window_minutes=max(60, EMPTY_MINUTES + 30),  # room for Butlr's data delay
                    site=SITE,
                    poll_interval=POLL_INTERVAL,
                ),
            )
        ],
    )


ROOM_EMPTY = [room_empty_asset(room) for room in ROOMS]


@dag(
    dag_id="butlr_room_empty_events",
    schedule=AssetAny(*ROOM_EMPTY),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["butlr", "example", "event-driven"],
    doc_md=__doc__,
)
def butlr_room_empty_events() -> None:
    @task
    def request_cleaning(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """One cleaning request per room that emptied (none in a manual run)."""
        requests = []
        for asset, events in (triggering_asset_events or {}).items():
            for event in events:
                # Airflow keeps a watcher's TriggerEvent payload under the asset event's extra["payload"]
                crossing = (event.extra or {}).get("payload") or {}
                requests.append(
                    {
                        "asset": asset.uri,
                        "room": crossing.get("asset_id"),
                        "empty_since": crossing.get("crossed_at"),
                    }
                )
                print(
                    f"Room {crossing.get('asset_id')} empty since {crossing.get('crossed_at')}: "
                    "cleaning requested"
                )
        if not requests:
            print("No room event in this run (started by hand?): nothing to clean.")
        return requests

    request_cleaning()


butlr_room_empty_events()
