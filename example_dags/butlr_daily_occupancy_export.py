"""Nightly export: yesterday's occupancy, traffic and presence time for every site, in its local day.

For each site (dynamic task mapping over the sites the connection sees), the previous day is taken
from local midnight to local midnight in the site's own timezone (23 or 25 hours on DST days).
``wait_for_complete_day`` (a deferrable ``ButlrDataCompleteSensor`` per site, waiting in the
triggerer, not in a worker slot) holds the exports back until Butlr's data for that local day is
final: the day's end plus 15 minutes has passed and the floors with presence sensors report every
window up to the end with no ``data_incomplete`` flag. Then each site's day is written as JSON Lines
under ``<base_path>/<day>/<site id>/``:

* ``occupancy.jsonl``: room and floor occupancy, hourly mean and max (presence sensors);
* ``traffic.jsonl``: entries/exits per traffic sensor and hour (``field`` in/out);
* ``presence_time.jsonl``: seconds of presence per room and floor and hour.

Then ``stats_last_7_days`` asks the stats API for each floor's average and median occupancy over
the 7 local days ending yesterday (business hours, weekdays), and ``summary`` writes
``<base_path>/<day>/summary.json``.

The base path is the DAG param ``base_path`` (default: env ``BUTLR_EXPORT_BASE_PATH``, else a temp
directory); it may be any ``ObjectStoragePath`` URI such as ``s3://bucket/butlr``. Re-running a
day overwrites its files. Works against the real API or the bundled emulator (``scripts/demo.sh``).

At scale (several workers, a backfill, one run per site): every task retries 3 times a minute apart,
so a lost worker costs a retry, not the run (a re-run writes the same file); give the connection
the extras ``max_requests_per_minute`` (the organisation's limit) and ``redis_conn_id`` (one limit
and one login for every host), see docs/scale.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_butlr.operators.butlr import ButlrReportingOperator, ButlrStatsOperator
from airflow_provider_butlr.sensors.butlr import ButlrDataCompleteSensor

DEFAULT_BASE_PATH = os.environ.get("BUTLR_EXPORT_BASE_PATH") or os.path.join(
    tempfile.gettempdir(), "butlr-exports"
)
# How often the completeness sensors poll, seconds (the deployment check shortens it).
POKE_SECONDS = int(os.environ.get("BUTLR_COMPLETENESS_POKE_SECONDS", "600"))
# The day to export: the day before the run's logical date (the DAG runs each morning, UTC).
DAY = "{{ macros.ds_add(ds, -1) }}"

EXPORTS: dict[str, dict[str, Any]] = {
    "occupancy": {
        "measurements": ["room_occupancy", "floor_occupancy"],
        "window_function": ["mean", "max"],
    },
    "traffic": {"measurements": ["traffic"], "window_function": "sum"},
    "presence_time": {
        "measurements": ["room_presence_time_secs", "floor_presence_time_secs"],
        "window_function": "sum",
    },
}


@dag(
    dag_id="butlr_daily_occupancy_export",
    schedule="0 9 * * *",  # 09:00 UTC: the previous local day is over in the Americas, Europe and Asia
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    # a lost worker (killed, evicted) fails its try: the next try, a minute later, writes the same files
    default_args={"retries": 3, "retry_delay": pendulum.duration(minutes=1)},
    params={"base_path": Param(DEFAULT_BASE_PATH, type="string", description="Where the export files go.")},
    tags=["butlr", "example", "export"],
    doc_md=__doc__,
)
def butlr_daily_occupancy_export() -> None:
    @task
    def plan(base_path: str, day: str) -> list[dict[str, Any]]:
        """One target per site with floors: its id, its folder, its timezone and the floors to check.

        The floors to check are those with an online presence sensor (the only floors with
        ``floor_occupancy`` data to judge completeness by).
        """
        from airflow_provider_butlr.hooks.butlr import ButlrHook

        with ButlrHook() as hook:
            topology = hook.get_topology()
            sensors = hook.get_sensors()
        covered = {
            s["floor_id"]
            for s in sensors
            if s.get("mode") == "presence" and s.get("room_id") and s.get("is_online")
        }
        targets = []
        for site in topology.sites:
            floors = [
                a.id for a in topology.assets.values() if a.kind == "floors" and a.site_id == site["id"]
            ]
            if floors:
                targets.append(
                    {
                        "site": site["id"],
                        "folder": f"{base_path.rstrip('/')}/{day}/{site['id']}",
                        "timezone": topology.site_timezone(site["id"]),
                        "floors": [floor for floor in floors if floor in covered],
                    }
                )
        if not targets:
            raise ValueError("the Butlr connection sees no site with floors")
        return targets

    @task
    def completeness_checks(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The sensor's arguments per site; a site without presence-covered floors is not checked."""
        return [{"floors": t["floors"], "timezone": t["timezone"]} for t in targets if t["floors"]]

    targets = plan(base_path="{{ params.base_path }}", day=DAY)

    # Waits in the triggerer (no worker slot) until every site's local day is final in Butlr.
    wait_for_complete_day = ButlrDataCompleteSensor.partial(
        task_id="wait_for_complete_day",
        local_day=DAY,  # the same window arguments as the exports below
        deferrable=True,
        poke_interval=POKE_SECONDS,
        timeout=6 * 3600,
        map_index_template="{{ task.timezone }}",
    ).expand_kwargs(completeness_checks(targets))

    def export_kwargs(name: str) -> Any:
        """Turns a site target into the mapped arguments of one export (file ``<name>.jsonl``)."""

        def kwargs(target: dict[str, Any]) -> dict[str, Any]:
            return {"sites": [target["site"]], "output_path": f"{target['folder']}/{name}.jsonl"}

        return kwargs

    exports = {
        name: ButlrReportingOperator.partial(
            task_id=f"export_{name}",
            local_day=DAY,
            window_every="1h",
            map_index_template="{{ task.sites[0] }}",
            **options,
        ).expand_kwargs(targets.map(export_kwargs(name)))
        for name, options in EXPORTS.items()
    }

    weekly_stats = ButlrStatsOperator(
        task_id="stats_last_7_days",
        measurements=["occupancy_avg_presence", "occupancy_median_presence"],
        sites=targets.map(lambda target: target["site"]),
        resolve_to="floors",
        local_day=DAY,
        days=7,
        time_ranges=[{"start": "08:00", "stop": "18:00"}],
        exclude_days_of_week=["Saturday", "Sunday"],
    )
    wait_for_complete_day >> [*exports.values(), weekly_stats]

    @task
    def summary(
        base_path: str,
        day: str,
        occupancy: list[Any],
        traffic: list[Any],
        presence_time: list[Any],
        stats: Any,
    ) -> dict[str, Any]:
        """Rows per site and file, plus the weekly stats, as ``<base_path>/<day>/summary.json``."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        exported = {"occupancy": occupancy, "traffic": traffic, "presence_time": presence_time}
        # Index by count: iterating a mapped XCom reads one item past the end, which Airflow logs
        # as an error-level "XCom not found" line although the run succeeds.
        files = [dict(items[i], export=name) for name, items in exported.items() for i in range(len(items))]
        document = {"day": day, "files": files, "weekly_stats": stats}
        target = f"{base_path.rstrip('/')}/{day}/summary.json"
        if "://" in target:
            ObjectStoragePath(target).write_text(json.dumps(document, indent=2))
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
        rows = sum(f["rows"] for f in files)
        print(
            f"{day}: {rows} rows in {len(files)} files under {base_path}; weekly stats for {len(stats)} floors"
        )
        return {"day": day, "rows": rows, "files": len(files), "summary": target}

    summary(
        base_path="{{ params.base_path }}",
        day=DAY,
        occupancy=exports["occupancy"].output,
        traffic=exports["traffic"].output,
        presence_time=exports["presence_time"].output,
        stats=weekly_stats.output,
    )


butlr_daily_occupancy_export()
