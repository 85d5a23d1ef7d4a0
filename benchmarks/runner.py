"""Run the scenarios against one emulator process, print the table and write the JSON report."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, ScenarioResult, Settings, prepare_airflow_env, set_connections
from benchmarks.report import machine_info, render_markdown

SCENARIOS = {
    "logins": "benchmarks.s1_logins",
    "overhead": "benchmarks.s2_overhead",
    "export": "benchmarks.s3_export",
    "concurrency": "benchmarks.s4_concurrency",
    "parse": "benchmarks.s5_parse_cost",
    "deferrable": "benchmarks.s6_deferrable",
    "rate_limit": "benchmarks.s7_rate_limit",
    "formats": "benchmarks.s8_formats",
    "webhooks": "benchmarks.s10_webhooks",
    "shared_polls": "benchmarks.s9_shared_polls",
    "limiter": "benchmarks.s11_limiter",
}
RESULTS = REPO / "benchmarks" / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and one round: a smoke run")
    parser.add_argument(
        "--only", action="append", choices=list(SCENARIOS), help="run only this scenario (repeatable)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON report path (default: benchmarks/results/latest.json, or quick.json with --quick)",
    )
    parser.add_argument(
        "--show", type=Path, metavar="JSON", help="print the Markdown table of an existing report and exit"
    )
    return parser.parse_args(argv)


def run_scenario(name: str, settings: Settings, emu: Any) -> ScenarioResult:
    module = importlib.import_module(SCENARIOS[name])
    started = time.perf_counter()
    try:
        result: ScenarioResult = module.run(settings, emu)
    except Exception as err:  # one broken scenario must not hide the others' figures
        traceback.print_exc()
        result = ScenarioResult(key=name, title=module.TITLE, method="", error=f"{type(err).__name__}: {err}")
    result.seconds = time.perf_counter() - started
    return result


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.show:
        print(render_markdown(json.loads(args.show.read_text())))
        return 0
    prepare_airflow_env()
    from benchmarks.emulator_process import EmulatorProcess

    settings = Settings(quick=args.quick)
    names = args.only or list(SCENARIOS)
    out = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    load_before = os.getloadavg()
    started = time.perf_counter()
    results = []
    with EmulatorProcess(size="large") as emu:
        set_connections(*emu.credentials())
        for name in names:
            print(f">> {name} ...", file=sys.stderr, flush=True)
            result = run_scenario(name, settings, emu)
            print(
                f"   {name}: {result.seconds:.1f} s" + (f" FAILED {result.error}" if result.error else ""),
                file=sys.stderr,
            )
            results.append(result)
    report = {
        "command": " ".join(["python -m benchmarks", *map(shlex.quote, argv)]),
        "quick": args.quick,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "total_seconds": time.perf_counter() - started,
        "machine": machine_info(),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "scenarios": [r.to_json() for r in results],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render_markdown(report))
    print(f"\nJSON report: {out}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0
