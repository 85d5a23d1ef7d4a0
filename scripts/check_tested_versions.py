#!/usr/bin/env python3
"""Check the README's "Tested versions" table against the matrix run (``.matrix-results.json``).

    check_tested_versions.py            # exit 1 if the README and the run disagree
    check_tested_versions.py --render   # print the table the run supports (paste it into the README)
    check_tested_versions.py --readme docs/tested-versions.md

The check reads the first Markdown table under the ``## Tested versions`` heading. Its (Airflow,
Python) rows must be exactly the recorded runs, every run must have passed, and a ``Tests`` column,
if present, must say what the run says. Other columns are free text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from matrix_results import DEFAULT_RESULTS, REPO, format_markdown, load, minor_of

HEADING = "## Tested versions"
Row = dict[str, str]


def readme_rows(readme: str) -> list[Row]:
    """The rows of the first table under the heading, keyed by lower-cased column name."""
    _, found, rest = readme.partition(HEADING)
    if not found:
        raise SystemExit(f"README has no {HEADING!r} section")
    table: list[list[str]] = []
    for line in rest.splitlines()[1:]:
        if line.startswith("## "):
            break
        if line.strip().startswith("|"):
            table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif table:
            break
    if len(table) < 3:
        raise SystemExit(f"no Markdown table with rows under {HEADING!r}")
    header = [cell.lower() for cell in table[0]]
    if "airflow" not in header or "python" not in header:
        raise SystemExit(f"the table under {HEADING!r} needs 'Airflow' and 'Python' columns")
    return [dict(zip(header, row, strict=False)) for row in table[2:]]


def disagreements(rows: list[Row], runs: list[dict[str, Any]]) -> list[str]:
    """Human-readable reasons why the README table and the run do not match (empty: they agree)."""
    claimed = {(row["airflow"], row["python"]) for row in rows}
    ran = {(run["airflow"], run["python"]): run for run in runs}
    problems = [f"Airflow {r['airflow']}: tests {r['result']}" for r in runs if r["result"] != "passed"]
    problems += [
        f"README claims Airflow {a} on Python {p}, the run has no such result"
        for a, p in sorted(claimed - set(ran))
    ]
    problems += [
        f"the run tested Airflow {a} on Python {p}, the README does not list it"
        for a, p in sorted(set(ran) - claimed)
    ]
    problems += [
        f"README says tests {row['tests']!r} for Airflow {row['airflow']}, the run says {run['result']!r}"
        for row in rows
        if "tests" in row
        and (run := ran.get((row["airflow"], row["python"]))) is not None
        and row["tests"] != run["result"]
    ]
    claimed_minors = [minor_of(a) for a, _ in claimed]
    problems += [
        f"README lists Airflow {m}.x more than once"
        for m in sorted(set(claimed_minors))
        if claimed_minors.count(m) > 1
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--readme", type=Path, default=REPO / "docs" / "tested-versions.md")
    parser.add_argument("--render", action="store_true", help="print the table the results support")
    args = parser.parse_args(argv)
    if not args.results.exists():
        print(f"{args.results} not found: run ./scripts/test_matrix.sh first", file=sys.stderr)
        return 2
    runs = load(args.results)["runs"]
    if args.render:
        print(format_markdown(runs))
        return 0
    problems = disagreements(readme_rows(args.readme.read_text()), runs)
    for problem in problems:
        print(f"tested versions: {problem}", file=sys.stderr)
    if problems:
        print(
            f"\nThe table the run supports (python3 {sys.argv[0]} --render):\n{format_markdown(runs)}",
            file=sys.stderr,
        )
        return 1
    print(f"README tested versions agree with {args.results.name}: {', '.join(r['airflow'] for r in runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
