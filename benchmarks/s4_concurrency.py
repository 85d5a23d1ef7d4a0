"""Scenario 4: an export of 40 batches under 100 ms of injected latency, max_concurrency 1 vs 5."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from benchmarks import butlr_client
from benchmarks.common import Line, ScenarioResult, Settings, Target, interleaved, median, ratio
from benchmarks.emulator_process import EmulatorProcess

KEY = "concurrency"
TITLE = "Export of 40 batches with 100 ms latency per request"
LATENCY = 0.1
IDS_PER_BATCH = 10  # the hook's own limit for ranges of 24 h or more
START = datetime(2026, 11, 2, tzinfo=timezone.utc)
LEVELS = (1, 5)


def digest(rows: list[dict[str, Any]]) -> str:
    """Order-sensitive fingerprint of the exported rows."""
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def run(settings: Settings, emu: EmulatorProcess) -> ScenarioResult:
    batches = 40
    rounds = settings.pick(3, 1)
    rooms = emu.asset_ids("rooms", batches * IDS_PER_BATCH)
    butlr_client.clear_token_cache()
    hook = butlr_client.new_hook()
    hook.get_token()  # log in before timing: both levels share the process-wide token

    def export(level: int) -> Any:
        def one_round(_: int) -> dict[str, Any]:
            stats_before = emu.requests("/api/v3/reporting")
            started = time.perf_counter()
            rows = list(
                hook.iter_reporting_rows(
                    "room_occupancy",
                    rooms=rooms,
                    start=START,
                    stop=START + timedelta(days=1),
                    every="1h",
                    function="mean",
                    max_concurrency=level,
                )
            )
            seconds = time.perf_counter() - started
            return {
                "seconds": seconds,
                "rows": len(rows),
                "requests": emu.requests("/api/v3/reporting") - stats_before,
                "digest": digest(rows),
            }

        return one_round

    emu.set_config(latency=LATENCY)
    try:
        runs = interleaved(rounds, {f"max_concurrency={level}": export(level) for level in LEVELS})
    finally:
        emu.set_config(latency=0.0)
        hook.close()

    result = ScenarioResult(
        key=KEY,
        title=TITLE,
        method=(
            f"hook.iter_reporting_rows over {len(rooms)} rooms for 1 day in 1-hour windows: the hook "
            f"splits them into {batches} requests of {IDS_PER_BATCH} ids; the emulator adds {LATENCY * 1000:.0f} ms "
            f"to every data request; {rounds} interleaved round(s); rows compared by an order-sensitive digest. "
            f"Floor: {batches} x {LATENCY:.1f} s = {batches * LATENCY:.1f} s at 1, "
            f"{batches // 5} x {LATENCY:.1f} s = {batches // 5 * LATENCY:.1f} s at 5."
        ),
    )
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "seconds": median([r["seconds"] for r in rs]),
            "rows": rs[0]["rows"],
            "requests": rs[0]["requests"],
            "digests": sorted({r["digest"] for r in rs}),
        }
        result.lines.append(
            Line(
                name,
                f"{summary[name]['seconds']:.2f} s, {summary[name]['rows']} rows, {summary[name]['requests']} requests",
                summary[name],
            )
        )
    one, five = (summary[f"max_concurrency={level}"] for level in LEVELS)
    speedup = ratio(one["seconds"], five["seconds"])
    same_rows = one["digests"] == five["digests"] and len(one["digests"]) == 1
    result.ratios = {"speedup_5_over_1": speedup, "same_rows": float(same_rows)}
    result.targets = [
        Target("speed-up of max_concurrency=5 over 1", speedup, 4.0, ">=", "x"),
        Target("identical rows at both levels (1 = yes)", float(same_rows), 1.0, ">="),
    ]
    return result
