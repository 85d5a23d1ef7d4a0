"""Scenario 4: an export of 40 batches under 100 ms of injected latency, max_concurrency 1 vs 5."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_butlr.reporting.export import run_export
from airflow_provider_butlr.reporting.export_options import ExportOptions
from airflow_provider_butlr.reporting.planning import ReportingQuery
from benchmarks import butlr_client
from benchmarks.common import (
    Line,
    ScenarioResult,
    Settings,
    Target,
    interleaved,
    median,
    process_cpu_seconds,
    ratio,
)
from benchmarks.emulator_process import EmulatorProcess

KEY = "concurrency"
TITLE = "Export of 40 batches with 100 ms latency per request"
LATENCY = 0.1
BATCHES = 40
IDS_PER_BATCH = 10  # the hook's own limit for ranges of 24 h or more
START = datetime(2026, 11, 2, tzinfo=UTC)
LEVELS = (1, 5)
# window size -> label; 1h is the headline (a typical export), 1d shows the same run with ~no payload
WORKLOADS = {"1h": "1-hour windows, 240 rows/request", "1d": "1-day windows, 10 rows/request"}
HEADLINE = "1h"


def digest(rows: list[dict[str, Any]]) -> str:
    """Order-sensitive fingerprint of the exported rows."""
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def run(settings: Settings, emu: EmulatorProcess) -> ScenarioResult:
    rounds = settings.pick(3, 1)
    rooms = emu.asset_ids("rooms", BATCHES * IDS_PER_BATCH)
    butlr_client.clear_token_cache()
    hook = butlr_client.new_hook()

    def export(every: str, level: int) -> dict[str, Any]:
        requests_before = emu.requests("/api/v3/reporting")
        server_cpu = process_cpu_seconds(emu.pid)
        client_cpu = time.process_time()
        started = time.perf_counter()
        query = ReportingQuery.build(
            "room_occupancy",
            assets={"rooms": rooms},
            start=START,
            stop=START + timedelta(days=1),
            every=every,
            function="mean",
        )
        rows = list(run_export(hook, query, ExportOptions(max_concurrency=level)))
        return {
            "seconds": time.perf_counter() - started,
            "server_cpu": process_cpu_seconds(emu.pid) - server_cpu,
            "client_cpu": time.process_time() - client_cpu,
            "rows": len(rows),
            "requests": emu.requests("/api/v3/reporting") - requests_before,
            "digest": digest(rows),
        }

    def contender(every: str, level: int) -> Callable[[int], dict[str, Any]]:
        return lambda _round: export(every, level)

    for every in WORKLOADS:  # warm-up without latency: login, the emulator's series cache
        export(every, 5)
    emu.set_config(latency=LATENCY)
    try:
        runs = interleaved(
            rounds,
            {
                f"{every} max_concurrency={level}": contender(every, level)
                for every in WORKLOADS
                for level in LEVELS
            },
        )
    finally:
        emu.set_config(latency=0.0)
        hook.close()

    result = ScenarioResult(
        key=KEY,
        title=TITLE,
        method=(
            f"export.run_export over {len(rooms)} rooms for 1 day: the hook splits them into {BATCHES} "
            f"requests of {IDS_PER_BATCH} ids; the emulator adds {LATENCY * 1000:.0f} ms to every data request; "
            f"after an untimed warm-up, {rounds} interleaved round(s); rows compared by an order-sensitive digest; "
            "CPU seconds of the emulator process and of the client measured per run. Latency floor: "
            f"{BATCHES} x {LATENCY:.1f} s = {BATCHES * LATENCY:.1f} s at 1, "
            f"{BATCHES // 5} x {LATENCY:.1f} s = {BATCHES // 5 * LATENCY:.1f} s at 5 (5x at best)."
        ),
    )
    summary: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        figures = {
            "seconds": median([r["seconds"] for r in rs]),
            "server_cpu_seconds": median([r["server_cpu"] for r in rs]),
            "client_cpu_seconds": median([r["client_cpu"] for r in rs]),
            "rows": rs[0]["rows"],
            "requests": rs[0]["requests"],
            "digests": sorted({r["digest"] for r in rs}),
        }
        summary[name] = figures
        every = name.split()[0]
        result.lines.append(
            Line(
                f"{WORKLOADS[every]}: max_concurrency={name.rsplit('=', 1)[1]}",
                f"{figures['seconds']:.2f} s, {figures['rows']} rows, {figures['requests']} requests "
                f"(CPU: emulator {figures['server_cpu_seconds']:.2f} s, client {figures['client_cpu_seconds']:.2f} s)",
                figures,
            )
        )
    for every in WORKLOADS:
        one, five = summary[f"{every} max_concurrency=1"], summary[f"{every} max_concurrency=5"]
        result.ratios[f"speedup_{every}"] = ratio(one["seconds"], five["seconds"])
        same = one["digests"] == five["digests"] and len(one["digests"]) == 1
        result.ratios[f"same_rows_{every}"] = float(same)
    result.targets = [
        Target(
            f"speed-up of max_concurrency=5 over 1 ({WORKLOADS[HEADLINE]})",
            result.ratios[f"speedup_{HEADLINE}"],
            4.0,
            ">=",
            "x",
        ),
        Target(
            "identical rows at both levels, both workloads (1 = yes)",
            min(result.ratios[f"same_rows_{every}"] for every in WORKLOADS),
            1.0,
            ">=",
        ),
    ]
    result.notes.append(
        f"the {WORKLOADS['1d']} run is the same export with almost no payload: it isolates the client's "
        f"concurrency from the emulator's own CPU (speed-up {result.ratios['speedup_1d']:.2f}x)"
    )
    return result
