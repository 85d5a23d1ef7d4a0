"""Shared pieces: the Airflow environment, statistics, interleaved rounds and the result records."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_CONN_ID = "butlr_bench"
HTTP_CONN_ID = "http_bench"


def prepare_airflow_env() -> None:
    """A throw-away AIRFLOW_HOME and quiet logging, set before anything imports Airflow.

    Bytecode caching is switched back on: an installed provider ships compiled ``.pyc`` files, and
    with ``PYTHONDONTWRITEBYTECODE`` every fresh process would recompile it from source (about
    250 ms per DAG parse on the reference machine), which measures the environment, not the code.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="butlr-bench-home-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


def butlr_connection_json(url: str, client_id: str, client_secret: str, audience: str, **extra: Any) -> str:
    """A ``butlr`` connection for the emulator, as an ``AIRFLOW_CONN_*`` JSON value (``extra`` added)."""
    return json.dumps(
        {
            "conn_type": "butlr",
            "host": url,
            "login": client_id,
            "password": client_secret,
            "extra": {"audience": audience, "auth_type": "client_credentials", "timeout": 30, **extra},
        }
    )


def http_connection_json(url: str) -> str:
    """A plain ``http`` connection (no login: HttpHook would otherwise send basic auth, no extras:
    HttpHook turns every extra into a request header)."""
    return json.dumps({"conn_type": "http", "host": url})


def set_connections(url: str, client_id: str, client_secret: str, audience: str) -> None:
    """Point ``butlr_bench`` and ``http_bench`` at the emulator through env-var connections."""
    os.environ[f"AIRFLOW_CONN_{BENCH_CONN_ID.upper()}"] = butlr_connection_json(
        url, client_id, client_secret, audience
    )
    os.environ[f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}"] = http_connection_json(url)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process so far (Linux /proc; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- statistics --------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 2,000 samples is the 1,900th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def interleaved(rounds: int, contenders: dict[str, Callable[[int], Any]]) -> dict[str, list[Any]]:
    """Run every contender once per round, rotating who goes first; collect each one's results.

    Alternation spreads slow drifts of a shared machine (CPU frequency, other tenants, GC) evenly
    over the contenders instead of charging them to whoever ran last.
    """
    names = list(contenders)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(contenders[name](round_no))
    return results


# --- results -----------------------------------------------------------------------------------


@dataclass
class Target:
    """A claim from the issue, checked against a measured figure."""

    description: str
    measured: float
    limit: float
    comparison: str  # "<=" or ">="
    unit: str = ""

    @property
    def met(self) -> bool:
        if math.isnan(self.measured):
            return False
        return self.measured <= self.limit if self.comparison == "<=" else self.measured >= self.limit

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


@dataclass
class Line:
    """One contender's figures in a scenario (preformatted text for the table, numbers for JSON)."""

    contender: str
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScenarioResult:
    key: str
    title: str
    method: str
    lines: list[Line] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "method": self.method,
            "contenders": {line.contender: {"summary": line.summary, **line.figures} for line in self.lines},
            "ratios": self.ratios,
            "targets": [t.to_json() for t in self.targets],
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
            "error": self.error,
        }


@dataclass
class Settings:
    """How big a run is; ``quick`` shrinks every scenario to a smoke test."""

    quick: bool = False
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="butlr-bench-")))

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full
