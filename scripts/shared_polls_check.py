#!/usr/bin/env python3
"""Shared polls in a real triggerer (issue 27): N mapped deferred sensors, requests per poke interval.

The deployment of the deployment check (``scripts/deployment_check.py``: emulator, api-server,
scheduler, dag-processor and triggerer as separate processes, LocalExecutor, throw-away SQLite
``AIRFLOW_HOME``) with one DAG of its own: ``ButlrDataCompleteSensor`` mapped over N rooms of the
emulator's three sites (one room per sensor, each with its site's timezone), deferrable, a short
``poke_interval``. With the emulator's clock just after the window, no sensor is satisfied: once all
N are ``deferred``, the check reads the emulator's reporting counter at every poke interval (half
way between two ticks of the triggers' clock grid) for a few intervals. Then the clock moves past
the window, every sensor succeeds, and the run must succeed.

Passes when every interval saw at most one request per site and 30 rooms (where each sensor alone
sends one: N), and the run succeeded. Prints the table.

    ./scripts/shared_polls_check.sh [--sensors 45] [--poke 10] [--intervals 4] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deployment_check import CheckFailed, Dates, Deployment, wait_for, wait_for_run

DAG_ID = "butlr_many_sensors"
TASK_ID = "wait_for_room"
GRID_OFFSET = 0.25  # the triggers' clock grid (airflow_provider_butlr.polling.sharing)
ROOMS_PER_REQUEST = 30

DAG_FILE = '''"""N deferred data-complete sensors, one room each (written by scripts/shared_polls_check.py)."""

import json
import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_provider_butlr.sensors.butlr import ButlrDataCompleteSensor

SENSORS = json.loads(os.environ["BUTLR_SCALE_SENSORS"])  # [{"rooms": [id], "timezone": tz}, ...]
WINDOW = json.loads(os.environ["BUTLR_SCALE_WINDOW"])  # [start, stop]


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False, max_active_tasks=64)
def butlr_many_sensors():
    ButlrDataCompleteSensor.partial(
        task_id="wait_for_room",
        start=WINDOW[0],
        stop=WINDOW[1],
        grace_period=timedelta(0),
        deferrable=True,
        poke_interval=int(os.environ["BUTLR_SCALE_POKE"]),
        timeout=3600,
    ).expand_kwargs(SENSORS)


butlr_many_sensors()
'''


def pick_rooms(count: int) -> list[dict[str, object]]:
    """``count`` rooms with data, taken in turn from the emulator's three sites (seed 42)."""
    from airflow_provider_butlr.testing.org.seed import build_org
    from airflow_provider_butlr.testing.timeseries.series import series_assets

    org = build_org(42, "small", time.time())
    with_data = set(series_assets(org, "room_occupancy", 42))
    sites: dict[str, list[str]] = {}
    for room in org.rooms_by_id.values():
        if room.id in with_data:
            sites.setdefault(org.site_timezone(room.floor_id), []).append(room.id)
    zones = sorted(sites)
    if count > sum(len(v) for v in sites.values()):
        raise SystemExit(f"the emulator has {sum(len(v) for v in sites.values())} rooms with data")
    picked: list[dict[str, object]] = []
    turn = 0
    while len(picked) < count:
        tz = zones[turn % len(zones)]
        if sites[tz]:
            picked.append({"rooms": [sites[tz].pop(0)], "timezone": tz})
        turn += 1
    return picked


def batches_of(sensors: list[dict[str, object]]) -> int:
    per_site: dict[object, int] = {}
    for sensor in sensors:
        per_site[sensor["timezone"]] = per_site.get(sensor["timezone"], 0) + 1
    return sum(-(-n // ROOMS_PER_REQUEST) for n in per_site.values())


def reporting(dep: Deployment) -> int:
    return int(dep.admin.counters().get("per_path", {}).get("/api/v3/reporting", 0))


def sample_intervals(dep: Deployment, poke: int, intervals: int) -> list[int]:
    """Reporting requests per poke interval, read half way between two ticks of the grid."""
    counts = []
    now = time.time()
    next_read = math.ceil((now - GRID_OFFSET) / poke) * poke + GRID_OFFSET + poke / 2
    time.sleep(max(next_read - now, 0))
    before = reporting(dep)
    for _ in range(intervals):
        next_read += poke
        time.sleep(max(next_read - time.time(), 0))
        after = reporting(dep)
        counts.append(after - before)
        before = after
    return counts


def run(dep: Deployment, sensors: list[dict[str, object]], poke: int, intervals: int) -> list[int]:
    dates = dep.dates
    window_end = dt.datetime.combine(dates.day, dt.time(20), dt.UTC)
    dags = dep.work / "dags"
    dags.mkdir(exist_ok=True)
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
    dep.migrate()
    dep.start_emulator()
    dep.build_env()
    dep.env.update(
        {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__MAX_MAP_LENGTH": "1024",
            "BUTLR_SCALE_SENSORS": json.dumps(sensors),
            "BUTLR_SCALE_WINDOW": json.dumps(
                [
                    f"{window_end - dt.timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}",
                    f"{window_end:%Y-%m-%dT%H:%M:%SZ}",
                ]
            ),
            "BUTLR_SCALE_POKE": str(poke),
        }
    )
    dep.start_airflow()
    wait_for("the api-server", dep.api.up, 180, dep.airflow_components())
    wait_for("the DAG to be parsed", lambda: DAG_ID in dep.db.dag_ids(), 180, dep.airflow_components())
    dep.api.unpause(DAG_ID)
    # just after the window: its last minutes are not in the data yet
    dep.admin.set_clock(f"{window_end + dt.timedelta(minutes=2):%Y-%m-%dT%H:%M:%SZ}")
    run_id = dep.api.trigger(DAG_ID, None, "shared_polls_check")

    def all_deferred() -> bool:
        states = dep.db.task_states(DAG_ID, run_id, TASK_ID)
        mapped = [v for k, v in states.items() if "[" in k]
        if any(v in ("success", "failed", "skipped") for v in mapped):
            raise CheckFailed(f"sensors finished before the data was complete: {states}")
        return len(mapped) == len(sensors) and all(v == "deferred" for v in mapped)

    wait_for(
        f"{len(sensors)} sensors to be deferred",
        all_deferred,
        600,
        dep.airflow_components(),
        lambda: f"{dep.db.task_states(DAG_ID, run_id, TASK_ID)}",
    )
    print(f">> {len(sensors)} sensors deferred; counting reporting requests per poke interval", flush=True)
    counts = sample_intervals(dep, poke, intervals)
    dep.admin.set_clock(dates.complete_clock)
    wait_for_run(dep, DAG_ID, run_id, timeout=900)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=45, help="mapped sensors (default 45)")
    parser.add_argument("--poke", type=int, default=10, help="poke_interval in seconds (default 10)")
    parser.add_argument("--intervals", type=int, default=4, help="poke intervals counted (default 4)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory on success too")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="butlr-shared-polls-check-")).resolve()
    sensors = pick_rooms(args.sensors)
    limit = batches_of(sensors)
    dep = Deployment(work, Dates.from_now(dt.datetime.now(dt.UTC)))
    dep.build_env()
    ok = False
    started = time.monotonic()
    try:
        counts = run(dep, sensors, args.poke, args.intervals)
        print(
            "\n| Poke interval | Reporting requests (real triggerer) | Limit (sites + batching) | Each sensor alone |"
        )
        print("|---|---|---|---|")
        for i, count in enumerate(counts, 1):
            print(f"| {i} | {count} | {limit} | {len(sensors)} |")
        ok = bool(counts) and max(counts) <= limit and min(counts) >= 1
        verdict = "PASSED" if ok else f"FAILED (at most {limit} per interval expected)"
        print(
            f"\nSHARED POLLS CHECK {verdict}: {len(sensors)} deferred sensors, run succeeded, "
            f"{time.monotonic() - started:.0f} s"
        )
    except CheckFailed as exc:
        print(f"\nSHARED POLLS CHECK FAILED: {exc}", file=sys.stderr)
        print(dep.tails(), file=sys.stderr)
    finally:
        dep.stop_all()
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f">> everything is under {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
