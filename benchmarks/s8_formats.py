"""Scenario 8: the files people store. Rows/s, bytes and peak RSS of every output format and
compression on the same export (200 rooms x 30 days of 15-minute windows, 576,000 rows), against dlt's
defaults (gzipped JSON Lines through its filesystem destination) on the same requests.

dlt is not a dependency of this project: point ``BUTLR_BENCH_DLT_PYTHON`` at the interpreter of a
virtualenv that has it (``python3 -m venv /tmp/dlt && /tmp/dlt/bin/pip install dlt requests``);
without it the dlt contender is left out, with a note.
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.common import BENCH_CONN_ID, Line, ScenarioResult, Settings, Target, median, ratio
from benchmarks.emulator_process import EmulatorProcess
from benchmarks.s3_export import MiB, export_once

KEY = "formats"
TITLE = "Output formats: rows/s and bytes of each format on one export, against dlt's defaults"
DLT_PYTHON = "BUTLR_BENCH_DLT_PYTHON"
# contender -> (child mode, file name, output_compression)
FORMATS: dict[str, tuple[str, str, str | None]] = {
    "JSON Lines": ("operator", "day.jsonl", None),
    "JSON Lines, gzip (.jsonl.gz)": ("operator", "day.jsonl.gz", None),
    "JSON Lines, zstd (.jsonl.zst)": ("operator", "day.jsonl.zst", None),
    "CSV": ("operator", "day.csv", None),
    "CSV, gzip (.csv.gz)": ("operator", "day.csv.gz", None),
    "CSV, zstd (.csv.zst)": ("operator", "day.csv.zst", None),
    "Parquet, zstd (the default)": ("operator", "day.parquet", "zstd"),
    "Parquet, snappy (pyarrow's default)": ("operator", "day.parquet", "snappy"),
}
DLT = "dlt 'filesystem' destination, defaults (JSON Lines, gzip)"


def write_only(settings: Settings, emu: EmulatorProcess, rounds: int) -> dict[str, dict[str, float]]:
    """The writing alone: 20 rooms x 30 days (57,600 rows) fetched once, then written to every format
    ``rounds`` times, formats interleaved (the starting one rotated); median seconds per format."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook
    from airflow_provider_butlr.reporting.export import run_export
    from airflow_provider_butlr.reporting.output.files import write_rows
    from airflow_provider_butlr.reporting.planning import ReportingQuery

    days = settings.pick(30, 2)
    query = ReportingQuery.build(
        "room_occupancy",
        assets={"rooms": emu.asset_ids("rooms", 20)},
        start="2026-10-01T00:00:00Z",
        stop=f"2026-10-{1 + days:02d}T00:00:00Z",
        every="15m",
        function="mean",
        timezone="UTC",
    )
    with ButlrHook(BENCH_CONN_ID) as hook:
        rows = list(run_export(hook, query))
    names = list(FORMATS)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    sizes: dict[str, int] = {}
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            _, file_name, compression = FORMATS[name]
            out = settings.work_dir / f"write-only-{file_name}"
            started = time.perf_counter()
            write_rows(rows, str(out), compression=compression)
            seconds[name].append(time.perf_counter() - started)
            sizes[name] = out.stat().st_size
            out.unlink()
    return {
        name: {"rows": len(rows), "seconds": median(seconds[name]), "file_bytes": sizes[name]}
        for name in names
    }


def run(settings: Settings, emu: EmulatorProcess | None = None) -> ScenarioResult:
    rooms = 200
    days = settings.pick(30, 2)
    contenders: dict[str, dict[str, Any]] = {
        name: {"mode": mode, "out": str(settings.work_dir / f"{i}-{name_}"), "compression": comp}
        for i, (name, (mode, name_, comp)) in enumerate(FORMATS.items())
    }
    dlt_python = os.environ.get(DLT_PYTHON)
    if dlt_python:
        contenders[DLT] = {"mode": "dlt", "out": str(settings.work_dir / "dlt-bucket"), "python": dlt_python}
    names = list(contenders)
    rounds = settings.pick(7, 1)
    figures: dict[str, dict[str, Any]] = {}
    for name in names:  # one round: each export is 576,000 rows, its own client and emulator processes
        options = {k: v for k, v in contenders[name].items() if k != "mode" and v is not None}
        run_ = export_once(contenders[name]["mode"], rooms, days, settings.work_dir, "15m", **options)
        figures[name] = {
            "rows": run_["rows"],
            "seconds": run_["seconds"],
            "rows_per_second": run_["rows_per_second"],
            "peak_rss_mib": run_["peak_rss"] / MiB,
            "file_mib": run_["file_bytes"] / MiB,
            "file_bytes": run_["file_bytes"],
            "requests": run_["requests"],
        }
    # After the exports: the rows it holds would count in every export child's peak RSS (Linux keeps
    # ru_maxrss across fork and exec).
    writing = write_only(settings, emu, rounds) if emu is not None else {}
    result = ScenarioResult(
        key=KEY,
        title=TITLE,
        method=(
            f"room_occupancy, mean, 15-minute windows, {rooms} rooms x {days} days "
            f"({rooms * days * 96:,} rows); each export in a fresh client process against a fresh emulator "
            "process (as the export scenario), one after the other; rows/s = rows / wall time of the "
            "whole export (requests included: the emulator's time is the same for every contender); "
            "bytes = the stored file. gzip level 6, zstd level 3, Parquet row groups of 10,000. dlt: "
            f"the same 20 requests through requests as a dlt resource, pipeline.run() to the filesystem "
            f"destination with its defaults (interpreter from {DLT_PYTHON}). Writing alone: 20 rooms x "
            f"{settings.pick(30, 2)} days fetched once in the runner, then write_rows to each format, "
            f"{rounds} interleaved rounds, median (what each format costs without the network and the server)."
        ),
    )
    for name, w in writing.items():
        result.lines.append(
            Line(
                f"writing alone: {name}",
                f"{w['rows']:,} rows in {w['seconds']:.2f} s = {w['rows'] / w['seconds']:,.0f} rows/s; "
                f"{w['file_bytes'] / w['rows']:.1f} bytes/row",
                {**w, "rows_per_second": w["rows"] / w["seconds"]},
            )
        )
    for name, f in figures.items():
        result.lines.append(
            Line(
                name,
                f"{f['rows']:,} rows in {f['seconds']:.1f} s = {f['rows_per_second']:,.0f} rows/s; "
                f"{f['file_mib']:.1f} MiB ({f['file_bytes'] / max(1, f['rows']):.1f} bytes/row); "
                f"peak RSS {f['peak_rss_mib']:.0f} MiB",
                f,
            )
        )
    plain, gz = figures["JSON Lines"], figures["JSON Lines, gzip (.jsonl.gz)"]
    pq_zstd, pq_snappy = (
        figures["Parquet, zstd (the default)"],
        figures["Parquet, snappy (pyarrow's default)"],
    )
    if writing:
        w_zstd, w_snappy = (
            writing["Parquet, zstd (the default)"],
            writing["Parquet, snappy (pyarrow's default)"],
        )
        scale = pq_snappy["rows"] / w_snappy["rows"]  # the writing-alone rows -> the export's rows
        zstd_extra = (w_zstd["seconds"] - w_snappy["seconds"]) * scale
    result.ratios = {
        "jsonl_gz_bytes_over_jsonl": ratio(gz["file_bytes"], plain["file_bytes"]),
        "jsonl_gz_rows_per_second_over_jsonl": ratio(gz["rows_per_second"], plain["rows_per_second"]),
        "parquet_zstd_bytes_over_snappy": ratio(pq_zstd["file_bytes"], pq_snappy["file_bytes"]),
        "parquet_zstd_rows_per_second_over_snappy": ratio(
            pq_zstd["rows_per_second"], pq_snappy["rows_per_second"]
        ),
    }
    result.targets.append(
        Target(
            "Parquet zstd file / snappy file (the default codec is smaller)",
            result.ratios["parquet_zstd_bytes_over_snappy"],
            1.0,
            "<=",
            "x",
        )
    )
    if writing:
        result.ratios["parquet_zstd_writing_rows_per_second_over_snappy"] = ratio(
            w_zstd["rows"] / w_zstd["seconds"], w_snappy["rows"] / w_snappy["seconds"]
        )
        result.ratios["parquet_zstd_extra_writing_share_of_export"] = ratio(zstd_extra, pq_snappy["seconds"])
        result.targets.append(
            Target(
                "zstd's extra writing time over snappy's, as a share of the Parquet export's wall time "
                "(not slower where it counts)",
                result.ratios["parquet_zstd_extra_writing_share_of_export"],
                0.05,
                "<=",
                "",
            )
        )
    if DLT in figures:
        dlt = figures[DLT]
        result.ratios.update(
            {
                "jsonl_gz_rows_per_second_over_dlt": ratio(gz["rows_per_second"], dlt["rows_per_second"]),
                "jsonl_gz_bytes_over_dlt": ratio(gz["file_bytes"], dlt["file_bytes"]),
                "jsonl_bytes_over_dlt": ratio(plain["file_bytes"], dlt["file_bytes"]),
                "jsonl_gz_peak_rss_over_dlt": ratio(gz["peak_rss_mib"], dlt["peak_rss_mib"]),
            }
        )
        result.targets.append(
            Target(
                "bytes of .jsonl.gz / dlt's default file",
                result.ratios["jsonl_gz_bytes_over_dlt"],
                1.1,
                "<=",
                "x",
            )
        )
        result.targets.append(
            Target(
                "rows/s of .jsonl.gz / dlt's",
                result.ratios["jsonl_gz_rows_per_second_over_dlt"],
                1.0,
                ">=",
                "x",
            )
        )
    else:
        result.notes.append(f"dlt left out: set {DLT_PYTHON} to a Python that has dlt installed")
    return result
