"""The one table of the scale check: each figure, its target (issue 27) and whether it is met.

Printed as Markdown, so it can be pasted into docs/scale-check.md as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

WALL_FACTOR = 1.25  # total wall time at most 1.25x the rate limit's floor
REJECTED_SHARE = 0.01  # 429 answers at most 1 % of the data requests


@dataclass
class Figures:
    """What one scale check measured (every count over the load, from the first trigger on)."""

    runs: int
    limit: int  # the server's limit, requests per minute
    workers: int
    runs_ok: int = 0
    runs_failed: int = 0  # failed, or not finished before the check's deadline
    failed_tasks: int = 0  # task instances whose final state is not success (nor skipped)
    failed_attempts: int = 0  # tries that failed (then retried), the killed worker's tries left out
    killed_attempts: int = 0  # tries that died with the killed worker
    failure_causes: dict[str, int] = field(default_factory=dict)  # failed tries by exception type
    clean_requests: int = 0  # data requests of the clean reference runs (the floor's work)
    requests: int = 0  # every request at the server (data requests and logins)
    data_requests: int = 0
    rejected: int = 0  # 429 answers
    busiest: int = 0  # most data-request arrivals in any 60 s window
    logins_before: int = 0  # successful logins before the revocation
    logins_after: int = 0  # successful logins from the revocation on
    revoked: bool = False
    wall_seconds: float = 0.0  # first trigger to the last run's end
    outputs_match: bool = False
    files_compared: int = 0
    rows_compared: int = 0
    secret_hits: int = 0  # the client secret or a token in any scanned byte
    notes: list[str] = field(default_factory=list)

    @property
    def floor_seconds(self) -> float:
        """The rate limit's floor: the clean runs' data requests at ``limit`` per minute."""
        return self.clean_requests * 60.0 / self.limit if self.limit else 0.0

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.data_requests if self.data_requests else 0.0


@dataclass(frozen=True)
class Row:
    figure: str
    value: str
    target: str
    ok: bool | None  # None: reported, no target


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def causes(counts: dict[str, int]) -> str:
    """`` (ButlrRateLimitError 5, ...)`` after a count of failed tries; nothing when there are none."""
    if not counts:
        return ""
    return (
        " ("
        + ", ".join(f"{cause} {n}" for cause, n in sorted(counts.items(), key=lambda c: (-c[1], c[0])))
        + ")"
    )


def rows(f: Figures) -> list[Row]:
    floor = f.floor_seconds
    wall_ratio = f.wall_seconds / floor if floor else 0.0
    logins = [
        Row(
            "logins (before the revocation)" if f.revoked else "logins",
            str(f.logins_before),
            "1",
            f.logins_before == 1,
        )
    ]
    if f.revoked:
        logins.append(
            Row("logins after every token was revoked", str(f.logins_after), "exactly 1", f.logins_after == 1)
        )
    return [
        Row(
            "runs ok / failed",
            f"{f.runs_ok} / {f.runs_failed}",
            f"{f.runs} / 0",
            f.runs_ok == f.runs and not f.runs_failed,
        ),
        Row("failed tasks (final state)", str(f.failed_tasks), "0", f.failed_tasks == 0),
        Row(
            "failed task tries (retried; the killed worker's left out)",
            f"{f.failed_attempts}{causes(f.failure_causes)}",
            "0",
            f.failed_attempts == 0,
        ),
        Row("task tries lost with the killed worker", str(f.killed_attempts), "-", None),
        Row(
            "requests at the server (data + logins)",
            f"{f.requests} ({f.data_requests} + {f.requests - f.data_requests})",
            f"clean runs: {f.clean_requests} data",
            None,
        ),
        Row(
            "429 answers",
            f"{f.rejected} ({f.rejected_share:.1%} of data requests)",
            f"<= {REJECTED_SHARE:.0%}",
            f.rejected_share <= REJECTED_SHARE,
        ),
        Row("most arrivals in any 60 s window", str(f.busiest), f"<= {f.limit}", f.busiest <= f.limit),
        *logins,
        Row(
            "wall time (first trigger to last run end)",
            f"{minutes(f.wall_seconds)} = {wall_ratio:.2f}x floor"
            + (" (failed runs did not do all their work)" if f.runs_failed else ""),
            f"<= {WALL_FACTOR}x floor {minutes(floor)}",
            bool(floor) and wall_ratio <= WALL_FACTOR and not f.runs_failed,
        ),
        Row(
            "output files match a clean run row for row",
            f"{'yes' if f.outputs_match else 'no'} ({f.files_compared} files, {f.rows_compared} rows)",
            "yes",
            f.outputs_match,
        ),
        Row("client secret / token in any scanned byte", str(f.secret_hits), "0", f.secret_hits == 0),
    ]


def failed(table: Sequence[Row]) -> list[Row]:
    return [r for r in table if r.ok is False]


def markdown(table: Sequence[Row]) -> str:
    mark = {True: "yes", False: "**NO**", None: ""}
    lines = ["| Figure | Measured | Target | Met |", "|---|---|---|---|"]
    lines += [f"| {r.figure} | {r.value} | {r.target} | {mark[r.ok]} |" for r in table]
    return "\n".join(lines)
