"""One export in a fresh process, reporting rows, seconds and peak RSS as one JSON line.

``python -m benchmarks.export_child SPEC_JSON`` where the spec holds ``mode`` (``operator``: the
provider's ``ButlrReportingOperator`` streaming JSON Lines to a file, or the format and compression
the ``out`` suffix names (``.csv.gz``, ``.jsonl.zst``...) and ``compression``; ``parquet``: the same
to Parquet; ``dlt``: a dlt pipeline with its defaults, the same requests through ``requests`` as the
resource, written by dlt's filesystem destination (gzipped JSON Lines); ``httphook``: the usual
hand-written alternative, ``HttpHook.run()`` per batch of 10 rooms, rows collected in a list and
dumped at the end, 429 answers retried by tenacity honouring ``Retry-After``; ``floor``: the same
requests as raw downloads, no decoding: what the server alone costs), ``rooms``, ``start``,
``stop``, ``every`` and ``out``; optional ``max_concurrency`` and ``max_ids_per_request`` (the
operator) and ``ids_per_batch`` (the loop and the floor). A fresh process per export makes
``ru_maxrss`` the peak of that export alone.
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
        output_format=spec.get("format"),
        output_compression=spec.get("compression"),
        max_concurrency=spec.get("max_concurrency", 1),
        max_ids_per_request=spec.get("max_ids_per_request"),
    )
    result = operator.execute({})
    return int(result["rows"])


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429, retry after {retry_after} s")
        self.retry_after = retry_after


def loop_bodies(spec: dict[str, Any]) -> list[dict[str, Any]]:
    ids, size = spec["rooms"], spec.get("ids_per_batch", IDS_PER_BATCH)
    return [
        {
            "filter": {
                "measurements": ["room_occupancy"],
                "rooms": {"eq": ids[i : i + size]},
                "start": spec["start"],
                "stop": spec["stop"],
                "value": {"gte": 0},
            },
            "window": {"every": spec["every"], "function": "mean", "timezone": "UTC", "create_empty": True},
        }
        for i in range(0, len(ids), size)
    ]


def post_with_retries(client: Any, body: dict[str, Any], decode: bool = True) -> Any:
    """One reporting call through HttpHook; a 429 is retried after its ``Retry-After`` (tenacity)."""
    import tenacity

    from benchmarks.contenders import REPORTING_PATH

    for attempt in tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RateLimited),
        wait=lambda state: state.outcome.exception().retry_after,  # type: ignore[union-attr]
        stop=tenacity.stop_after_attempt(30),
        reraise=True,
    ):
        with attempt:
            token = client._token or client.log_in()
            response = client._hook.run(
                REPORTING_PATH,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                extra_options={"check_response": False},
            )
            if response.status_code == 429:
                raise RateLimited(float(response.headers.get("Retry-After") or 1))
            response.raise_for_status()
            return response.json() if decode else response.content
    raise AssertionError("unreachable")


def export_with_httphook(spec: dict[str, Any]) -> int:
    from benchmarks.contenders import HttpHookClient, login_body

    client = HttpHookClient(login_body(spec["client_id"], spec["client_secret"], spec["audience"]))
    client.log_in()
    rows: list[Any] = []
    for body in loop_bodies(spec):
        rows.extend(post_with_retries(client, body)["data"])
    with open(spec["out"], "w", encoding="utf-8") as out:
        json.dump(rows, out)
    return len(rows)


def download_floor(spec: dict[str, Any]) -> int:
    """The requests alone, sequentially, bodies discarded: the server's (and the latency's) share."""
    from benchmarks.contenders import HttpHookClient, login_body

    client = HttpHookClient(login_body(spec["client_id"], spec["client_secret"], spec["audience"]))
    client.log_in()
    size = 0
    for body in loop_bodies(spec):
        size += len(post_with_retries(client, body, decode=False))
    Path(spec["out"]).write_bytes(b"")
    return 0


def export_with_dlt(spec: dict[str, Any]) -> int:
    """dlt's defaults: a resource yielding the API's rows, ``pipeline.run`` to the filesystem
    destination (``out`` is its bucket folder), JSON Lines gzipped by dlt's default compression."""
    import dlt
    import requests

    from benchmarks.contenders import REPORTING_PATH, login_body, raw_login

    session = requests.Session()
    token = raw_login(
        session, spec["url"], login_body(spec["client_id"], spec["client_secret"], spec["audience"])
    )

    @dlt.resource(name="room_occupancy", write_disposition="append")
    def rows() -> Any:
        for body in loop_bodies(spec):
            answer = session.post(
                spec["url"] + REPORTING_PATH,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=300,
            )
            answer.raise_for_status()
            yield answer.json()["data"]

    pipeline = dlt.pipeline(
        pipeline_name="butlr_bench",
        pipelines_dir=str(Path(spec["out"]) / "_pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=Path(spec["out"]).as_uri()),
        dataset_name="butlr",
    )
    pipeline.run(rows())
    return int(pipeline.last_trace.last_normalize_info.row_counts["room_occupancy"])


def output_bytes(out: Path) -> int:
    """The export's size: the file, or (dlt) the table's files in its bucket folder."""
    if out.is_dir():
        return sum(p.stat().st_size for p in (out / "butlr" / "room_occupancy").rglob("*") if p.is_file())
    return out.stat().st_size


PRELOAD = {
    "operator": ("requests", "airflow_provider_butlr.hooks.butlr", "airflow_provider_butlr.operators.butlr"),
    "parquet": (
        "requests",
        "airflow_provider_butlr.hooks.butlr",
        "airflow_provider_butlr.operators.butlr",
        "pyarrow.parquet",
    ),
    "httphook": ("requests", "airflow.providers.http.hooks.http", "benchmarks.contenders"),
    "floor": ("requests", "airflow.providers.http.hooks.http", "benchmarks.contenders"),
    "dlt": ("requests", "dlt"),
}
EXPORTS = {
    "operator": export_with_operator,
    "parquet": lambda spec: export_with_operator({**spec, "format": "parquet"}),
    "httphook": export_with_httphook,
    "floor": download_floor,
    "dlt": export_with_dlt,
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
        "file_bytes": output_bytes(Path(spec["out"])),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
