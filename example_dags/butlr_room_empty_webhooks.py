"""Push: request a cleaning when a room has been empty for a while, from Butlr's webhooks (Airflow >= 3.0).

The push twin of ``butlr_room_empty_events``: the same asset convention
(``butlr://<host>/rooms/<room id>/empty``), the same crossing rule (occupancy 0 held for
``BUTLR_WEBHOOK_EMPTY_MINUTES`` after someone was there, fired once) and the same event payload, but
nothing polls. Butlr POSTs each room's minute to the receiver on the api-server
(``butlr_webhook_subscriptions`` declares that subscription); the receiver evaluates the condition
declared on the asset (its ``extra.butlr_condition``) over the pushed minutes and records one asset
event per crossing, which starts this DAG.

Configuration (read when the file is parsed):

* ``BUTLR_WEBHOOK_ROOMS``: comma-separated room ids (default: a room of the bundled emulator's seed 42);
* ``BUTLR_WEBHOOK_EMPTY_MINUTES`` (default 15);
* ``BUTLR_WEBHOOK_ASSET_HOST``: the host in the asset URIs, the receiver connection's ``extra.asset_host``
  (default ``api.butlr.io``).
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import AssetAny, dag, task

from airflow_provider_butlr.webhooks.assets import room_state_asset

EMULATOR_ROOM = "room_2aVq9x4BafE7tFacPaWvCiEOfIJ"  # a presence-covered room of the emulator's seed 42
ROOMS = [r.strip() for r in os.environ.get("BUTLR_WEBHOOK_ROOMS", EMULATOR_ROOM).split(",") if r.strip()]
EMPTY_MINUTES = int(os.environ.get("BUTLR_WEBHOOK_EMPTY_MINUTES", "15"))
ASSET_HOST = os.environ.get("BUTLR_WEBHOOK_ASSET_HOST", "api.butlr.io")

ROOM_EMPTY = [
    room_state_asset("rooms", room, "empty", op="<=", threshold=0, for_minutes=EMPTY_MINUTES, host=ASSET_HOST)
    for room in ROOMS
]


@dag(
    dag_id="butlr_room_empty_webhooks",
    schedule=AssetAny(*ROOM_EMPTY),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["butlr", "example", "webhooks", "event-driven"],
    doc_md=__doc__,
)
def butlr_room_empty_webhooks() -> None:
    @task
    def request_cleaning(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """One cleaning request per room that emptied (none in a manual run)."""
        requests = []
        for asset, events in (triggering_asset_events or {}).items():
            for event in events:
                crossing = (event.extra or {}).get("payload") or {}  # the receiver's payload
                names = crossing.get("metadata") or {}
                requests.append(
                    {
                        "asset": asset.uri,
                        "room": crossing.get("asset_id"),
                        "room_name": names.get("room_name"),
                        "empty_since": crossing.get("crossed_at"),
                    }
                )
                print(
                    f"Room {names.get('room_name') or crossing.get('asset_id')} empty since "
                    f"{crossing.get('crossed_at')}: cleaning requested"
                )
        if not requests:
            print("No room event in this run (started by hand?): nothing to clean.")
        return requests

    request_cleaning()


butlr_room_empty_webhooks()
