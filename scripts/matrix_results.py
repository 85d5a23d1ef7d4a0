#!/usr/bin/env python3
"""The Airflow version matrix results file (``.matrix-results.json``): record one run, print the table.

    matrix_results.py record --airflow 3.1.8 --junit junit.xml --exit-code 0 \
        --install-seconds 12.3 --test-seconds 45.6 --python 3.11
    matrix_results.py table          # prints the table; exits 1 if any minor failed or is missing
    matrix_results.py markdown       # the README's "Tested versions" table (docs/tested-versions.md)

Standard library only: it runs before (and outside) any venv.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO / ".matrix-results.json"
COUNTS = ("passed", "failed", "errors", "skipped")
# Where the connection form comes from on each minor (verified by tests/unit/test_registration.py and
# scripts/ui_check.sh).
FORM_SOURCE = {
    "3.0": "hook's Python methods (`hook_meta` fills it only where FAB/WTForms are installed)",
    "3.1": "hook's Python methods (Airflow mocks WTForms)",
    "3.2": "declarative `conn-fields` in the provider info",
    "3.3": "declarative `conn-fields`; the hook is not imported",
}


def minor_of(version: str) -> str:
    """``"3.1.8"`` -> ``"3.1"``."""
    return ".".join(version.split(".")[:2])


def load(path: Path) -> dict[str, Any]:
    """The results document; an empty one when the file does not exist yet."""
    if not path.exists():
        return {"runs": []}
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def junit_counts(junit: Path) -> dict[str, int]:
    """passed / failed / errors / skipped from a pytest ``--junitxml`` report (zeros if missing)."""
    if not junit.exists():
        return dict.fromkeys(COUNTS, 0)
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {
        key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")
    }
    return {
        "passed": total["tests"] - total["failures"] - total["errors"] - total["skipped"],
        "failed": total["failures"],
        "errors": total["errors"],
        "skipped": total["skipped"],
    }


def record(args: argparse.Namespace) -> int:
    """Insert or replace the run of one Airflow minor."""
    document = load(args.results)
    counts = junit_counts(args.junit)
    ok = args.exit_code == 0 and counts["failed"] == 0 and counts["errors"] == 0 and counts["passed"] > 0
    run = {
        "airflow": args.airflow,
        "minor": minor_of(args.airflow),
        "python": args.python,
        "result": "passed" if ok else "failed",
        "exit_code": args.exit_code,
        **counts,
        "install_seconds": round(args.install_seconds, 1),
        "test_seconds": round(args.test_seconds, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    runs = [r for r in document["runs"] if r["minor"] != run["minor"]] + [run]
    document["runs"] = sorted(runs, key=lambda r: [int(p) for p in r["minor"].split(".")])
    args.results.write_text(json.dumps(document, indent=2) + "\n")
    return 0


def format_table(runs: list[dict[str, Any]]) -> str:
    """``Airflow | result | passed/failed/skipped | seconds`` as aligned plain text."""
    rows = [("Airflow", "result", "passed/failed/skipped", "seconds (install+tests)")]
    for run in runs:
        failed = run["failed"] + run["errors"]
        seconds = f"{run['install_seconds']:.0f}+{run['test_seconds']:.0f}"
        rows.append((run["airflow"], run["result"], f"{run['passed']}/{failed}/{run['skipped']}", seconds))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def format_markdown(runs: list[dict[str, Any]]) -> str:
    """The README's "Tested versions" Markdown table, newest Airflow first."""
    lines = ["| Airflow | Python | Tests | Connection form |", "|---|---|---|---|"]
    for run in reversed(runs):
        source = FORM_SOURCE.get(run["minor"], "")
        lines.append(f"| {run['airflow']} | {run['python']} | {run['result']} | {source} |")
    return "\n".join(lines)


def markdown(args: argparse.Namespace) -> int:
    """Print the Markdown table of the recorded runs."""
    print(format_markdown(load(args.results)["runs"]))
    return 0


def table(args: argparse.Namespace) -> int:
    """Print the table; non-zero when a run failed or an expected minor has no run."""
    runs = load(args.results)["runs"]
    print(format_table(runs))
    missing = sorted(set(args.expect or []) - {r["airflow"] for r in runs})
    failed = [r["airflow"] for r in runs if r["result"] != "passed"]
    if missing:
        print(f"no result for Airflow {', '.join(missing)}", file=sys.stderr)
    if failed:
        print(f"FAILED on Airflow {', '.join(failed)}", file=sys.stderr)
    return 1 if missing or failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="record one minor's run")
    rec.add_argument("--airflow", required=True, help="the exact Airflow version, e.g. 3.1.8")
    rec.add_argument("--python", required=True, help="Python major.minor of the venv")
    rec.add_argument("--junit", type=Path, required=True)
    rec.add_argument("--exit-code", type=int, required=True)
    rec.add_argument("--install-seconds", type=float, default=0.0)
    rec.add_argument("--test-seconds", type=float, default=0.0)
    rec.set_defaults(handler=record)
    tab = commands.add_parser("table", help="print the results table")
    tab.add_argument("--expect", nargs="*", help="Airflow versions that must have a run")
    tab.set_defaults(handler=table)
    md = commands.add_parser("markdown", help="print the README's tested-versions table")
    md.set_defaults(handler=markdown)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
