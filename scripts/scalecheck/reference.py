"""The clean reference: one daily export per date, one at a time, with ``dag.test()`` (no executor,
no other run, no rate limit, no fault) against an emulator of this process with the load's seed.

Run by ``scripts/scale_check.py`` as a subprocess with its own ``AIRFLOW_HOME`` (a SQLite database
migrated here) while the deployment starts::

    python scripts/scalecheck/reference.py --home DIR --out DIR --seed 42 --logical-date 2026-11-17T09:00:00Z ...

Writes the export files under ``--out`` (``<day>/<site>/<name>.jsonl``, ``<day>/summary.json``) and
``--out/reference.json``: per logical date the run's state, its task instances and the emulator's data requests and
logins (the load's floor and progress are computed from these counts).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "butlr_daily_occupancy_export"
DATA_PATHS = ("/api/v3/graphql", "/api/v3/reporting", "/api/v4/reporting/stats")


def prepare_env(home: Path, out: Path) -> None:
    """A private Airflow home (SQLite) for this process and the ``airflow db migrate`` it needs."""
    home.mkdir(parents=True, exist_ok=True)
    for key in [k for k in os.environ if k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))]:
        del os.environ[key]
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "BUTLR_EXPORT_BASE_PATH": str(out),
            "BUTLR_COMPLETENESS_POKE_SECONDS": "1",
            "BUTLR_TOKEN_CACHE_DIR": str(home / "butlr-token-cache"),
        }
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, stdout=subprocess.DEVNULL)


def data_requests(emu: Any) -> int:
    return sum(emu.counters.requests(path) for path in DATA_PATHS)


def run_references(logical_dates: list[str], seed: int) -> dict[str, Any]:
    import pendulum

    from airflow_provider_butlr.testing import ButlrEmulator

    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,unused-ignore]

    runs: dict[str, Any] = {}
    with ButlrEmulator(port=0, seed=seed) as emu:
        os.environ["AIRFLOW_CONN_BUTLR_DEFAULT"] = emu.connection_json()
        bag = DagBag(dag_folder=str(REPO / "example_dags"))
        if bag.import_errors:
            raise RuntimeError(f"example_dags do not import: {bag.import_errors}")
        dag = bag.get_dag(DAG_ID)
        for logical_date in logical_dates:
            before_data, before_logins = data_requests(emu), emu.counters.logins
            run = dag.test(logical_date=pendulum.parse(logical_date))
            runs[logical_date] = {
                "state": str(run.state),
                "data_requests": data_requests(emu) - before_data,
                "logins": emu.counters.logins - before_logins,
                "tasks": len(run.get_task_instances()),
            }
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--logical-date", action="append", required=True, dest="logical_dates")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    prepare_env(args.home, args.out)
    runs = run_references(args.logical_dates, args.seed)
    (args.out / "reference.json").write_text(json.dumps(runs, indent=2))
    failed = {date: run["state"] for date, run in runs.items() if run["state"] != "success"}
    if failed:
        print(f"reference runs failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
