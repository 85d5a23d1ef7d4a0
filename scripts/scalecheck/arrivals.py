"""What arrived at the emulator, read from its request log: requests, 429 answers, logins, and the
most arrivals in any 60-second window.

The emulator logs one line per request when it has answered (``docs/emulator.md``, "Request log")::

    2026-11-26 02:29:16,788 POST /api/v3/graphql 429 3.7 ms

The line's time (local time, milliseconds) minus the duration is when the request arrived. Admin
requests (``/_emulator/...``) are the harness's own and are left out; logins are counted apart from
data requests (GraphQL, reporting, stats: the requests the server's rate limit counts).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

LINE = re.compile(
    r"(?P<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(?P<ms>\d{3}) (?P<method>[A-Z]+) (?P<path>/\S*) "
    r"(?P<status>\d{3}|dropped) (?P<duration>\d+(?:\.\d+)?) ms$"
)
LOGIN_PATHS = frozenset({"/api/v2/clients/login", "/api/v2/login"})
ADMIN_PREFIX = "/_emulator"
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Arrival:
    at: float  # epoch seconds when the request arrived (answer time minus duration)
    method: str
    path: str
    status: int | None  # None: the emulator dropped the connection

    @property
    def is_login(self) -> bool:
        return self.path in LOGIN_PATHS

    @property
    def is_data(self) -> bool:
        return not self.is_login and not self.path.startswith(ADMIN_PREFIX)


def parse_line(line: str) -> Arrival | None:
    """One request-log line as an :class:`Arrival`; None for any other line (start banner, warnings)."""
    match = LINE.search(line.strip())
    if match is None:
        return None
    answered = dt.datetime.strptime(match["date"], "%Y-%m-%d %H:%M:%S").timestamp() + int(match["ms"]) / 1000
    status = None if match["status"] == "dropped" else int(match["status"])
    return Arrival(answered - float(match["duration"]) / 1000, match["method"], match["path"], status)


def parse_log(lines: Iterable[str]) -> list[Arrival]:
    """Every request of the log except the admin API's, in order of arrival."""
    found = (parse_line(line) for line in lines)
    return sorted(
        (a for a in found if a is not None and not a.path.startswith(ADMIN_PREFIX)), key=lambda a: a.at
    )


def read_log(path: Path) -> list[Arrival]:
    return parse_log(path.read_text(errors="replace").splitlines())


def busiest_window(times: Sequence[float], window: float = WINDOW_SECONDS) -> tuple[int, float | None]:
    """(most arrivals in any half-open window ``[t, t + window)``, its start) over sorted ``times``.

    The busiest window can always be taken to start at an arrival, so a two-pointer pass is exact.
    """
    best, best_start, first = 0, None, 0
    for last, at in enumerate(times):
        while times[first] <= at - window:
            first += 1
        if last - first + 1 > best:
            best, best_start = last - first + 1, times[first]
    return best, best_start


@dataclass(frozen=True)
class Traffic:
    """The figures of the table that come from the request log."""

    requests: int  # every request but the admin API's
    data_requests: int
    rejected: int  # 429 answers
    logins: int  # successful logins (200)
    busiest: int  # most data-request arrivals in any 60 s window
    busiest_start: float | None
    logins_before: int  # successful logins before ``split`` (the revocation), and from it on
    logins_after: int

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.data_requests if self.data_requests else 0.0


def summarize(arrivals: Sequence[Arrival], split: float | None = None) -> Traffic:
    """The log's figures; ``split`` (epoch seconds) divides the logins into before and after it."""
    data = [a for a in arrivals if a.is_data]
    logins = [a for a in arrivals if a.is_login and a.status == 200]
    busiest, start = busiest_window([a.at for a in data])
    before = sum(1 for a in logins if split is None or a.at < split)
    return Traffic(
        requests=len(arrivals),
        data_requests=len(data),
        rejected=sum(1 for a in data if a.status == 429),
        logins=len(logins),
        busiest=busiest,
        busiest_start=start,
        logins_before=before,
        logins_after=len(logins) - before,
    )
