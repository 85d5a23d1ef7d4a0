"""Every output file of the load against the clean reference run of the same day, row for row.

The reference (``scalecheck/reference.py``) and the load write the same tree under their base
paths: ``<day>/<site id>/<name>.jsonl`` and ``<day>/summary.json``. A JSON Lines file matches when
its lines are equal in order. ``summary.json`` matches once its base path is replaced by a marker
and the per-run counters that depend on the traffic, not on the data (``requests``, ``resplits``:
how many requests and splits a file took, which 429 answers and retries change), are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VOLATILE_KEYS = frozenset({"requests", "resplits"})
BASE_MARKER = "<base_path>"


@dataclass
class Comparison:
    files: int = 0  # reference files compared
    rows: int = 0  # reference rows compared (JSON Lines)
    problems: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.files > 0 and not self.problems


def normalized_summary(text: str, base: Path) -> Any:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE_KEYS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str):
            return value.replace(str(base).rstrip("/"), BASE_MARKER)
        return value

    return strip(json.loads(text))


def compare_file(
    reference: Path, actual: Path, reference_base: Path, actual_base: Path
) -> tuple[int, str | None]:
    """(reference rows, None when equal else what differs) for one file."""
    expected = reference.read_text(encoding="utf-8")
    try:
        got = actual.read_text(encoding="utf-8")
    except FileNotFoundError:
        return expected.count("\n"), "missing"
    if reference.name == "summary.json":
        try:
            equal = normalized_summary(expected, reference_base) == normalized_summary(got, actual_base)
        except ValueError as exc:
            return 0, f"not JSON ({exc})"
        return 0, None if equal else "differs (after the base path and the request counters)"
    want, have = expected.splitlines(), got.splitlines()
    if want == have:
        return len(want), None
    first = next(
        (i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b), min(len(want), len(have))
    )
    return len(want), f"{len(have)} rows, reference {len(want)}; first difference at row {first + 1}"


def compare_days(reference_base: Path, actual_base: Path, days: Iterable[str]) -> Comparison:
    """Compare ``<day>/`` of both trees for each day: missing, extra and differing files."""
    result = Comparison()
    for day in sorted(days):
        ref_dir, act_dir = reference_base / day, actual_base / day
        if not ref_dir.is_dir():
            result.problems.append(f"{day}: no reference files")
            continue
        ref_files = {p.relative_to(reference_base) for p in ref_dir.rglob("*") if p.is_file()}
        act_files = (
            {p.relative_to(actual_base) for p in act_dir.rglob("*") if p.is_file()}
            if act_dir.is_dir()
            else set()
        )
        for rel in sorted(act_files - ref_files):
            result.problems.append(f"{rel}: not in the reference")
        for rel in sorted(ref_files):
            rows, problem = compare_file(reference_base / rel, actual_base / rel, reference_base, actual_base)
            result.files += 1
            result.rows += rows
            if problem:
                result.problems.append(f"{rel}: {problem}")
    return result
