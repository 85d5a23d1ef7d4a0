"""Assets: a weekly report scheduled on the daily room-occupancy export's asset.

``butlr_weekly_occupancy_report`` runs whenever ``butlr_room_occupancy_asset`` (its own file)
updates the asset ``ROOM_OCCUPANCY`` (``schedule=[ROOM_OCCUPANCY]``): it reads the triggering
event's metadata, finds the week's files through the asset's latest events (``inlet_events``), and
writes each room's mean and peak occupancy over those days to
``<base>/room_occupancy/weekly/<day>.json``. Started by hand before any export, it reports that
there is nothing to read yet.

The asset is defined as in the producer's file (same name, same URI from env
``BUTLR_EXPORT_BASE_PATH``, else a temp directory): see docs/assets-and-lineage.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from typing import Any

import pendulum
from airflow.sdk import Asset, dag, task

from airflow_provider_butlr.assets import export_asset_uri

BASE_PATH = os.environ.get("BUTLR_EXPORT_BASE_PATH") or os.path.join(tempfile.gettempdir(), "butlr-exports")
FOLDER = f"{BASE_PATH.rstrip('/')}/room_occupancy"
ROOM_OCCUPANCY = Asset(name="butlr_room_occupancy_daily", uri=export_asset_uri(FOLDER))


def read_text(path: str) -> str:
    """A local file, or any ObjectStoragePath URI (s3://, gs://, file://...)."""
    if "://" in path:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        return ObjectStoragePath(path).read_text()
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def write_text(path: str, text: str) -> None:
    if "://" in path:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        ObjectStoragePath(path).write_text(text)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


@dag(
    dag_id="butlr_weekly_occupancy_report",
    schedule=[ROOM_OCCUPANCY],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["butlr", "example", "assets"],
    doc_md=__doc__,
)
def butlr_weekly_occupancy_report() -> None:
    @task(inlets=[ROOM_OCCUPANCY])
    def weekly_report(triggering_asset_events: Any = None, inlet_events: Any = None) -> dict[str, Any]:
        """Mean and peak occupancy per room over the (up to) 7 latest exported days."""
        triggered = list(triggering_asset_events[ROOM_OCCUPANCY]) if triggering_asset_events else []
        recent = list(inlet_events[ROOM_OCCUPANCY][-14:])  # the latest events, re-runs included
        latest_per_day: dict[str, dict[str, Any]] = {}
        for event in [*recent, *triggered]:  # later events of the same day win
            extra = event.extra or {}
            if extra.get("day") and extra.get("path"):
                latest_per_day[extra["day"]] = extra
        if not latest_per_day:
            print(f"No export of {ROOM_OCCUPANCY.uri} yet (started by hand?): nothing to report.")
            return {"days": [], "rows": 0, "rooms": 0, "report": None}
        days = sorted(latest_per_day)[-7:]
        means: dict[str, list[float]] = defaultdict(list)
        peaks: dict[str, float] = defaultdict(float)
        for day in days:
            for line in read_text(latest_per_day[day]["path"]).splitlines():
                row = json.loads(line)
                if row["value"] is None:
                    continue
                if row["function"] == "mean":
                    means[row["asset_id"]].append(row["value"])
                else:
                    peaks[row["asset_id"]] = max(peaks[row["asset_id"]], row["value"])
        rooms = {
            room: {"mean": round(sum(values) / len(values), 3), "peak": peaks.get(room)}
            for room, values in sorted(means.items())
        }
        report = {
            "days": days,
            "rows": sum(latest_per_day[d]["rows"] for d in days),
            "triggered_by": [e.extra.get("day") for e in triggered],
            "rooms": rooms,
        }
        target = f"{FOLDER}/weekly/{days[-1]}.json"
        write_text(target, json.dumps(report, indent=2))
        print(
            f"Weekly report for {days[0]}..{days[-1]}: {len(rooms)} rooms, {report['rows']} rows -> {target}"
        )
        return {"days": days, "rows": report["rows"], "rooms": len(rooms), "report": target}

    weekly_report()


butlr_weekly_occupancy_report()
