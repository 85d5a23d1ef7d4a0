"""One export in a fresh process, reporting rows, seconds and peak RSS as one JSON line.

``python -m benchmarks.export_child SPEC_JSON`` where the spec holds ``mode`` (``operator``: the
provider's ``ButlrReportingOperator`` streaming JSON Lines to a file; ``parquet``: the same to
Parquet; ``httphook``: the usual
hand-written alternative, ``HttpHook.run()`` per batch of 10 rooms, rows collected in a list and
dumped at the end), ``rooms``, ``start``, ``stop``, ``every`` and ``out``. A fresh process per
export makes ``ru_maxrss`` the peak of that export alone.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BENCH_CONN_ID, prepare_airflow_env

IDS_PER_BATCH = 10  # Butlr's limit for ranges of 24 h or more


def current_rss() -> int:
    """Resident set size now, in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            import os

            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def peak_rss() -> int:
    """Peak resident set size of this process, in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def export_with_operator(spec: dict[str, Any]) -> int:
    from airflow_provider_butlr.operators.butlr import ButlrReportingOperator

    operator = ButlrReportingOperator(
        task_id="bench_export",
        butlr_conn_id=BENCH_CONN_ID,
        measurements=["room_occupancy"],
        rooms=spec["rooms"],
        start=spec["start"],
        stop=spec["stop"],
        window_every=spec["every"],
        window_function="mean",
        timezone="UTC",
        output_path=spec["out"],
        output_format=spec.get("format", "jsonl"),
    )
    result = operator.execute({})
    return int(result["rows"])


def export_with_httphook(spec: dict[str, Any]) -> int:
    from benchmarks.contenders import HttpHookClient, login_body

    client = HttpHookClient(login_body(spec["client_id"], spec["client_secret"], spec["audience"]))
    client.log_in()
    rows: list[Any] = []
    ids = spec["rooms"]
    for i in range(0, len(ids), IDS_PER_BATCH):
        body = {
            "filter": {
                "measurements": ["room_occupancy"],
                "rooms": {"eq": ids[i : i + IDS_PER_BATCH]},
                "start": spec["start"],
                "stop": spec["stop"],
                "value": {"gte": 0},
            },
            "window": {"every": spec["every"], "function": "mean", "timezone": "UTC", "create_empty": True},
        }
        rows.extend(client.reporting(body)["data"])
    with open(spec["out"], "w", encoding="utf-8") as out:
        json.dump(rows, out)
    return len(rows)


PRELOAD = {
    "operator": ("requests", "airflow_provider_butlr.hooks.butlr", "airflow_provider_butlr.operators.butlr"),
    "parquet": (
        "requests",
        "airflow_provider_butlr.hooks.butlr",
        "airflow_provider_butlr.operators.butlr",
        "pyarrow.parquet",
    ),
    "httphook": ("requests", "airflow.providers.http.hooks.http", "benchmarks.contenders"),
}
EXPORTS = {
    "operator": export_with_operator,
    "parquet": lambda spec: export_with_operator({**spec, "format": "parquet"}),
    "httphook": export_with_httphook,
}


def main(spec: dict[str, Any]) -> dict[str, Any]:
    prepare_airflow_env()
    # Import everything the export needs first: the baseline is the process ready to export.
    for module in PRELOAD[spec["mode"]]:
        importlib.import_module(module)
    baseline = current_rss()
    started = time.perf_counter()
    rows = EXPORTS[spec["mode"]](spec)
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_second": rows / seconds if seconds else 0.0,
        "baseline_rss": baseline,
        "peak_rss": peak_rss(),
        "file_bytes": Path(spec["out"]).stat().st_size,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
