"""Scenario 3: export throughput and peak memory, 30 days of 15-minute windows, 20 rooms and 10x (200 rooms)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BENCH_CONN_ID,
    HTTP_CONN_ID,
    REPO,
    Line,
    ScenarioResult,
    Settings,
    Target,
    butlr_connection_json,
    http_connection_json,
    median,
    ratio,
)
from benchmarks.contenders import rfc3339
from benchmarks.emulator_process import EmulatorProcess

KEY = "export"
TITLE = "Export: 30 days x 15-minute windows, throughput and peak RSS"
START = datetime(2026, 10, 1, tzinfo=UTC)
MiB = 2**20
SUFFIXES = {"operator": "jsonl", "parquet": "parquet", "httphook": "json"}


def export_once(
    mode: str,
    rooms: int,
    days: int,
    work_dir: Path,
    every: str = "15m",
    config: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """One export in a fresh client process against a fresh emulator process (cold caches).

    ``config`` sets emulator fields (latency, rate limit); ``options`` go into the child's spec.
    """
    with EmulatorProcess(size="large") as emu:
        if config:
            emu.set_config(**config)
        url, client_id, client_secret, audience = emu.credentials()
        spec: dict[str, Any] = {
            "mode": mode,
            "rooms": emu.asset_ids("rooms", rooms),
            "start": rfc3339(START),
            "stop": rfc3339(START + timedelta(days=days)),
            "every": every,
            "out": str(work_dir / f"export-{mode}-{rooms}.{SUFFIXES.get(mode, 'json')}"),
            "url": url,
            "client_id": client_id,
            "client_secret": client_secret,
            "audience": audience,
            **options,
        }
        env = {
            **os.environ,
            f"AIRFLOW_CONN_{BENCH_CONN_ID.upper()}": butlr_connection_json(
                url, client_id, client_secret, audience, **spec.pop("connection_extra", {})
            ),
            f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": http_connection_json(url),
        }
        python = spec.pop("python", None) or sys.executable  # dlt runs in a virtualenv of its own
        out = subprocess.run(
            [python, "-m", "benchmarks.export_child", json.dumps(spec)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        requests = emu.requests("/api/v3/reporting")
        refused = emu.call("statuses", status=429) if config and "rate_limit_per_minute" in config else 0
    written = Path(spec["out"])
    if written.is_dir():
        shutil.rmtree(written)
    written.unlink(missing_ok=True)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} export of {rooms} rooms failed: {out.stderr.strip()[-2000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "requests": requests, "refused": refused}


def run(settings: Settings, emu: EmulatorProcess | None = None) -> ScenarioResult:
    # The export is 200 rooms x 30 days (576,000 rows). Its 10x (5.76 M rows) takes over
    # 10 minutes on the reference machine (client and emulator each ~10-25 k rows/s), more than the
    # whole suite may take; so the memory pair is 1/10 of it (1x) and the export itself (10x),
    # with the same request shape (10 rooms x 1 day per request) at both sizes.
    rooms_small = 20
    rooms_big = rooms_small * 10
    days = settings.pick(30, 3)
    rounds = settings.pick(1, 1)
    minute_days = settings.pick(7, 1)
    runs_spec = {
        f"ButlrReportingOperator -> JSONL, {rooms_small} rooms (1x)": ("operator", rooms_small, days, "15m"),
        f"ButlrReportingOperator -> JSONL, {rooms_big} rooms (10x)": ("operator", rooms_big, days, "15m"),
        f"HttpHook per batch, rows in a list, {rooms_big} rooms (10x)": ("httphook", rooms_big, days, "15m"),
        f"ButlrReportingOperator -> JSONL, {rooms_small} rooms, 1-minute x {minute_days} days": (
            "operator",
            rooms_small,
            minute_days,
            "1m",
        ),
        f"HttpHook per batch, {rooms_small} rooms, 1-minute x {minute_days} days": (
            "httphook",
            rooms_small,
            minute_days,
            "1m",
        ),
        f"ButlrReportingOperator -> Parquet, {rooms_small} rooms (1x)": ("parquet", rooms_small, days, "15m"),
        f"ButlrReportingOperator -> Parquet, {rooms_big} rooms (10x)": ("parquet", rooms_big, days, "15m"),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in runs_spec}
    names = list(runs_spec)
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            mode, rooms, span_days, every = runs_spec[name]
            runs[name].append(export_once(mode, rooms, span_days, settings.work_dir, every))

    result = ScenarioResult(
        key=KEY,
        title=TITLE,
        method=(
            f"room_occupancy, mean, 15-minute windows, {days} days from {START.date()}; each export in a fresh "
            "client process (peak RSS = ru_maxrss of that process; baseline = RSS after imports, before "
            "the export) against a fresh emulator process; "
            f"{rounds} round(s), contenders interleaved. 10x = {rooms_big} rooms x {days} days "
            f"({rooms_big * days * 96:,} rows), 1x = {rooms_small} rooms (the 10x of the issue's export "
            "does not fit the suite's 10-minute budget). The HttpHook contender is the hand-written "
            "alternative (10 rooms x the whole range per request, no paging, rows kept in a list, one "
            "json.dump), at the 10x size. The 1-minute pair shows the row budget (at most 50,000 rows "
            "per answer by default): the operator cuts the range, the loop asks for everything at once. "
            "Parquet: the operator writing output_format='parquet' (pyarrow, row groups of 10,000 rows), "
            "same sizes as JSONL."
        ),
    )
    summary: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        figures = {
            "rows": rs[0]["rows"],
            "requests": rs[0]["requests"],
            "seconds": median([r["seconds"] for r in rs]),
            "rows_per_second": median([r["rows_per_second"] for r in rs]),
            "peak_rss_mib": median([r["peak_rss"] for r in rs]) / MiB,
            "baseline_rss_mib": median([r["baseline_rss"] for r in rs]) / MiB,
            "file_mib": rs[0]["file_bytes"] / MiB,
            "rows_per_request": rs[0]["rows"] / max(1, rs[0]["requests"]),
        }
        figures["export_rss_mib"] = figures["peak_rss_mib"] - figures["baseline_rss_mib"]
        summary[name] = figures
        result.lines.append(
            Line(
                name,
                f"{figures['rows']:,} rows in {figures['seconds']:.1f} s = {figures['rows_per_second']:,.0f} rows/s; "
                f"peak RSS {figures['peak_rss_mib']:.0f} MiB ({figures['export_rss_mib']:+.0f} MiB over the "
                f"{figures['baseline_rss_mib']:.0f} MiB baseline); {figures['requests']} requests",
                figures,
            )
        )
    one, ten, http, minute_op, minute_http, parquet_one, parquet_ten = (summary[name] for name in names)
    result.ratios = {
        "peak_rss_10x_over_1x": ratio(ten["peak_rss_mib"], one["peak_rss_mib"]),
        "export_rss_10x_over_1x": ratio(ten["export_rss_mib"], one["export_rss_mib"]),
        "rows_per_second_10x_over_1x": ratio(ten["rows_per_second"], one["rows_per_second"]),
        "httphook_peak_rss_over_operator_10x": ratio(http["peak_rss_mib"], ten["peak_rss_mib"]),
        "operator_rows_per_second_over_httphook_10x": ratio(ten["rows_per_second"], http["rows_per_second"]),
        "operator_requests_over_httphook_10x": ratio(ten["requests"], http["requests"]),
        "operator_rows_per_second_over_httphook_1m": ratio(
            minute_op["rows_per_second"], minute_http["rows_per_second"]
        ),
        "operator_peak_rss_over_httphook_1m": ratio(minute_op["peak_rss_mib"], minute_http["peak_rss_mib"]),
        "parquet_peak_rss_10x_over_1x": ratio(parquet_ten["peak_rss_mib"], parquet_one["peak_rss_mib"]),
        "parquet_rows_per_second_over_jsonl_10x": ratio(
            parquet_ten["rows_per_second"], ten["rows_per_second"]
        ),
        "parquet_peak_rss_over_jsonl_10x": ratio(parquet_ten["peak_rss_mib"], ten["peak_rss_mib"]),
        "parquet_file_size_over_jsonl_10x": ratio(parquet_ten["file_mib"], ten["file_mib"]),
    }
    result.targets.append(
        Target(
            "requests of the 10x export / the HttpHook loop's",
            result.ratios["operator_requests_over_httphook_10x"],
            1.1,
            "<=",
            "x",
        )
    )
    result.targets.append(
        Target(
            "rows/s of the 10x export / the HttpHook loop's",
            result.ratios["operator_rows_per_second_over_httphook_10x"],
            1.2,
            ">=",
            "x",
        )
    )
    result.targets.append(
        Target(
            "peak RSS of the 10x export / the 1x export",
            result.ratios["peak_rss_10x_over_1x"],
            1.2,
            "<=",
            "x",
        )
    )
    result.targets.append(
        Target(
            "peak RSS of the 10x Parquet export / the 1x Parquet export",
            result.ratios["parquet_peak_rss_10x_over_1x"],
            1.2,
            "<=",
            "x",
        )
    )
    return result
