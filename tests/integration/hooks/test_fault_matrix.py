"""Fault matrix: one multi-batch, multi-page reporting export under every fault kind of issue 6.

Each case runs the same export (16 rooms x 3 days, 2 ids and 6 hourly windows per request,
5 rows per page: 96 units, 288 requests without faults) through ``export.run_export``
against the emulator, with one fault kind injected on about 20 % of the reporting requests
(seeded, so a failure reproduces). Every case asserts:

* the rows equal the fault-free run exactly, in order (and the fault-free run equals the
  emulator's ground truth, computed independently in ``tests.integration.reporting.test_export``);
* each logical request (one unit page) is asked in the fault-free order, at most
  ``max_retries + 1`` times (plus one replay after a 401); every extra request is accounted for;
* logins stay at one, plus one per revocation or per token lifetime that elapsed;
* waits: measured through tenacity's sleep (patched, never wall time); a ``Retry-After`` is
  honoured exactly and capped at ``retry_after_cap``; otherwise the backoff stays within its bounds.

Token faults are real ones: ``revoke`` revokes every issued token (every 5th call, so a fresh
token is never revoked before its replay), ``clock_jump`` moves the emulator clock half a token
lifetime. The silent-empty truncation hits where Butlr's does (the first page of a query for
several ids, 75 % of those: ~16 % of all requests); an empty single-id answer means "no data".

Then the GraphQL reads under partial data with errors, and the reporting operator once the faults
outlast the retry budget: a ButlrError subclass naming endpoint, status and attempts, and no file.

Figures per case (requests, retries, logins, virtual wait): ``BUTLR_FAULT_FIGURES=/tmp/f.jsonl
./scripts/test.sh -q tests/integration/hooks/test_fault_matrix.py`` appends one JSON line per case.
"""

from __future__ import annotations

import email.utils
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import tenacity.nap

from airflow_provider_butlr.exceptions import (
    ButlrAPIError,
    ButlrAuthError,
    ButlrDataError,
    ButlrError,
    ButlrGraphQLError,
    ButlrRateLimitError,
)
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.operators.butlr import ButlrReportingOperator
from airflow_provider_butlr.reporting.export_options import ExportStats
from airflow_provider_butlr.reporting.rows import Row
from airflow_provider_butlr.reporting.times import local_day_bounds
from airflow_provider_butlr.testing import ButlrEmulator
from airflow_provider_butlr.testing.http.counters import LOGIN_PATHS
from tests.conftest import TEST_CLIENT_SECRET, connection_json
from tests.integration.reporting.test_export import assert_same, export_rows, exported, ground_truth

REPORTING = "/api/v3/reporting"
GRAPHQL = "/api/v3/graphql"
TZ = "America/New_York"
FIRST_DAY, LAST_DAY = "2025-01-13", "2025-01-15"
ROOMS = 16
EXPORT: dict[str, Any] = {
    "every": "1h",
    "function": "mean",
    "timezone": TZ,
    "max_ids_per_request": 2,
    "max_windows_per_request": 6,
    "page_limit": 5,
}
RATE, SEED = 0.2, 6
MAX_RETRIES = 8
WAIT_INITIAL, WAIT_MAX = 0.01, 0.04
RETRY_AFTER_CAP = 5.0
TOKEN_LIFETIME = 3600
HOOK_TIMEOUT = 5.0


# --- harness -----------------------------------------------------------------------------------


class SleepRecorder:
    """Stands in for ``time`` inside ``tenacity.nap``: records every retry wait, sleeps not at all."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(float(seconds))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> SleepRecorder:
    recorder = SleepRecorder()
    monkeypatch.setattr(tenacity.nap, "time", SimpleNamespace(sleep=recorder.sleep))
    return recorder


class MaskRecorder:
    """Records the tokens the hook hands to Airflow's secrets masker.

    Airflow's masker recompiles one regex over every secret it holds on each addition, so dozens
    of logins in one process cost seconds each; the hygiene of the tokens is asserted here instead
    (every issued token was registered) and proven end to end in ``tests/system/test_secret_hygiene.py``.
    """

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def __call__(self, token: str) -> None:
        self.tokens.append(token)


@pytest.fixture(autouse=True)
def masked(monkeypatch: pytest.MonkeyPatch) -> MaskRecorder:
    recorder = MaskRecorder()
    monkeypatch.setattr("airflow_provider_butlr.hooks.butlr.mask_token", recorder)
    return recorder


@pytest.fixture(scope="module")
def matrix_emu() -> Iterator[ButlrEmulator]:
    """One emulator for the module (the export's data do not change); reset before each test."""
    with ButlrEmulator(port=0, client_secret=TEST_CLIENT_SECRET, token_lifetime=TOKEN_LIFETIME) as emu:
        yield emu


@pytest.fixture
def emu(matrix_emu: ButlrEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[ButlrEmulator]:
    matrix_emu.reset()
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(matrix_emu))
    yield matrix_emu
    matrix_emu.reset()


def export_rooms(emu: ButlrEmulator) -> list[str]:
    rooms = [r.id for r in emu.org.rooms_by_id.values() if emu.org.site_timezone(r.floor_id) == TZ]
    return rooms[:ROOMS]


def export_range() -> tuple[Any, Any]:
    return local_day_bounds(FIRST_DAY, TZ)[0], local_day_bounds(LAST_DAY, TZ)[1]


def body_key(body: Any) -> str:
    return json.dumps(body, sort_keys=True)


@dataclass
class Run:
    """What one export did, from both sides: the rows and stats, and the emulator's request log."""

    rows: list[Row]
    stats: ExportStats
    log: list[Any]
    seconds: float

    @property
    def reporting(self) -> list[Any]:
        return [r for r in self.log if r.path == REPORTING]

    @property
    def logins(self) -> int:
        return sum(1 for r in self.log if r.path in LOGIN_PATHS)

    @property
    def asked(self) -> list[str]:
        """Each logical request once, in the order it was first asked."""
        return list(dict.fromkeys(body_key(r.body_json) for r in self.reporting))

    @property
    def attempts(self) -> Counter[str]:
        return Counter(body_key(r.body_json) for r in self.reporting)

    def statuses(self, status: int | None) -> int:
        return sum(1 for r in self.reporting if r.status == status)


def run_export(emu: ButlrEmulator, max_concurrency: int = 1, **hook_kwargs: Any) -> Run:
    stats = ExportStats()
    began = time.perf_counter()
    rows = list(run_export_rows(emu, stats, max_concurrency, **hook_kwargs))
    return Run(rows, stats, emu.counters.log, time.perf_counter() - began)


def run_export_rows(
    emu: ButlrEmulator, stats: ExportStats | None = None, max_concurrency: int = 1, **hook_kwargs: Any
) -> Iterator[Row]:
    """The export's rows as they stream (the hook is closed when the iteration ends)."""
    hook_kwargs = {
        "max_retries": MAX_RETRIES,
        "retry_wait_initial": WAIT_INITIAL,
        "retry_wait_max": WAIT_MAX,
        "retry_after_cap": RETRY_AFTER_CAP,
        "timeout": HOOK_TIMEOUT,
        **hook_kwargs,
    }
    start, stop = export_range()
    with ButlrHook(**hook_kwargs) as hook:
        yield from export_rows(
            hook,
            "room_occupancy",
            rooms=export_rooms(emu),
            start=start,
            stop=stop,
            stats=stats,
            max_concurrency=max_concurrency,
            **EXPORT,
        )


@pytest.fixture(scope="module")
def baseline(matrix_emu: ButlrEmulator) -> Run:
    """The fault-free export, run once."""
    matrix_emu.reset()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(matrix_emu))
        patch.setattr("airflow_provider_butlr.hooks.butlr.mask_token", MaskRecorder())
        from airflow_provider_butlr.client.tokens.cache import TOKEN_CACHE

        TOKEN_CACHE.clear()
        return run_export(matrix_emu)


def test_the_fault_free_export_is_multi_batch_multi_page_and_the_ground_truth(
    emu: ButlrEmulator, baseline: Run
) -> None:
    start, stop = export_range()
    rooms = export_rooms(emu)
    expected = ground_truth(emu, "room_occupancy", rooms, start, stop, timedelta(hours=1), TZ, "mean")
    assert len(expected) == 72 * ROOMS == len(baseline.rows)
    assert_same(exported(baseline.rows), expected)
    bodies = [r.body_json for r in baseline.reporting]
    assert len(bodies) == baseline.stats.requests == 288 and baseline.logins == 1
    assert len({b["filter"]["rooms"]["eq"][0] for b in bodies}) == 8  # 8 id batches
    assert len({b["filter"]["start"] for b in bodies}) == 12  # 12 chunks of 6 h
    assert {b["paginate"]["page"] for b in bodies} == {1, 2, 3}
    assert all(baseline.attempts[k] == 1 for k in baseline.asked)


# --- the matrix ----------------------------------------------------------------------------------

RETRY_AFTER_DATE = "retry-after: an HTTP-date one hour ahead"


def http_date_in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


def several_ids_on_a_first_page(body: Any) -> bool:
    """Where Butlr's silent truncation shows: the first page of a query for more than one id."""
    if not isinstance(body, dict):
        return False
    ids = [i for f in body.get("filter", {}).values() if isinstance(f, dict) for i in f.get("eq", [])]
    return body.get("paginate", {}).get("page") == 1 and len(ids) > 1


@dataclass(frozen=True)
class Fault:
    """A fault kind: the emulator rule, the expected outcome class, and the expected waits."""

    name: str
    rule: dict[str, Any]
    outcome: str  # "retried" | "replayed" | "resplit"
    wait: float | None = None  # every wait equals this (Retry-After honoured / capped)
    hook: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 1
    extra_rules: tuple[dict[str, Any], ...] = ()


def status(code: int, **extra: Any) -> dict[str, Any]:
    return {"kind": "status", "status": code, "rate": RATE, "seed": SEED, **extra}


def seeded(kind: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "rate": RATE, "seed": SEED, **extra}


FAULTS = [
    Fault("429 Retry-After seconds", status(429, retry_after="2"), "retried", wait=2.0),
    Fault(
        "429 Retry-After seconds over the cap",
        status(429, retry_after="120"),
        "retried",
        wait=RETRY_AFTER_CAP,
    ),
    Fault(RETRY_AFTER_DATE, status(429), "retried", wait=RETRY_AFTER_CAP),
    Fault("429 without Retry-After", status(429), "retried"),
    Fault("500", status(500), "retried"),
    Fault("502 HTML body", status(502, body="<html><body><h1>502 Bad Gateway</h1></body></html>"), "retried"),
    Fault("503", status(503), "retried"),
    Fault("504", status(504), "retried"),
    Fault("connection reset mid-response", seeded("reset"), "retried"),
    Fault("dropped connection", seeded("drop"), "retried"),
    # 4 threads: the timeouts overlap, so the case costs a quarter of their wall time
    Fault(
        "read timeout, 4 threads", seeded("delay", delay=0.5), "retried", hook={"timeout": 0.1}, concurrency=4
    ),
    Fault("truncated JSON", seeded("truncated_json"), "retried"),
    Fault("malformed JSON (HTML in a 200)", status(200, body="<html>maintenance</html>"), "retried"),
    Fault("token expiring mid-export", seeded("clock_jump", advance=TOKEN_LIFETIME / 2), "replayed"),
    # every 5th call, never twice in a row: a replay with a fresh token is never revoked at once
    Fault("token revoked mid-export (401)", {"kind": "revoke", "every": 5}, "replayed"),
    Fault(
        "silent-empty truncation",
        seeded("empty_data", when=several_ids_on_a_first_page, rate=0.75),
        "resplit",
    ),
    Fault(
        "mixed 503 / reset / truncated JSON, 4 threads",
        {"kind": "status", "status": 503, "rate": 0.07, "seed": 1},
        "retried",
        concurrency=4,
        extra_rules=(
            {"kind": "reset", "rate": 0.07, "seed": 2},
            {"kind": "truncated_json", "rate": 0.07, "seed": 3},
        ),
    ),
]


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Append one JSON line to the file named by $BUTLR_FAULT_FIGURES, if set (for the report)."""
    target = os.environ.get("BUTLR_FAULT_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"fault": name, **figures}) + "\n")


def add_rules(emu: ButlrEmulator, fault: Fault) -> list[Any]:
    rules = []
    for spec in (fault.rule, *fault.extra_rules):
        spec = dict(spec)
        if fault.name == RETRY_AFTER_DATE:
            spec["retry_after"] = http_date_in(3600)
        rules.append(emu.faults.add(path=REPORTING, **spec))
    return rules


@pytest.mark.airflow_independent  # the hook's HTTP/retry engine only: once, not per Airflow minor
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_export_under_fault(
    emu: ButlrEmulator,
    baseline: Run,
    sleeps: SleepRecorder,
    masked: MaskRecorder,
    fault: Fault,
) -> None:
    rules = add_rules(emu, fault)
    run = run_export(emu, max_concurrency=fault.concurrency, **fault.hook)
    assert masked.tokens == emu.issued_tokens[-run.logins :]  # every new token masked at once
    injected = sum(rule.injected for rule in rules)
    extra = len(run.reporting) - len(baseline.reporting)
    figures = {
        "requests": len(run.reporting),
        "injected": injected,
        "retries": len(sleeps.waits),
        "waited_s": round(sum(sleeps.waits), 2),
        "replays_401": run.statuses(401),
        "resplits": run.stats.resplits,
        "logins": run.logins,
        "rows": len(run.rows),
        "seconds": round(run.seconds, 2),
    }
    record_figures(fault.name, figures)

    # nothing lost, nothing duplicated, same order
    assert run.rows == baseline.rows

    if fault.outcome == "resplit":
        # an empty answer for several ids is not believed: asked again in halves, never retried; a
        # half that answers proves the smaller size, and every later unit is cut to it before sending
        assert injected >= 1 and run.stats.resplits == injected and run.stats.empty_units == 0
        first = next(i for i, r in enumerate(run.reporting) if r.fault)
        later = run.reporting[first + 1 :]
        assert len(later) >= 200 and all(len(r.body_json["filter"]["rooms"]["eq"]) == 1 for r in later)
        assert not sleeps.waits and run.logins == 1
        assert max(run.attempts.values()) == 1
        return

    assert len(run.reporting) >= 200 and injected >= 0.1 * len(run.reporting), (injected, len(run.reporting))

    assert run.stats.requests == baseline.stats.requests  # the engine saw every page once
    if fault.concurrency == 1:
        assert run.asked == baseline.asked
    else:
        assert set(run.asked) == set(baseline.asked)

    if fault.outcome == "replayed":
        refused = run.statuses(401)
        assert not sleeps.waits and refused > 0
        assert extra == refused  # one replay per refused token
        assert max(run.attempts.values()) == 2
        assert run.logins == 1 + refused
        if fault.rule["kind"] == "revoke":
            assert refused == injected  # one login per revocation
        else:  # one login per token lifetime the emulator clock moved through
            lifetimes = injected * fault.rule["advance"] / TOKEN_LIFETIME
            assert lifetimes - 1 <= refused <= lifetimes + 1
        return

    # retried: one retry per injected fault (a slow machine may add a genuine timeout), bounded
    assert extra == len(sleeps.waits)
    if fault.hook.get("timeout"):
        assert len(sleeps.waits) >= injected
    else:
        assert len(sleeps.waits) == injected
    assert max(run.attempts.values()) <= MAX_RETRIES + 1
    assert run.logins == 1
    if fault.wait is not None:
        assert sleeps.waits == [fault.wait] * len(sleeps.waits)  # Retry-After honoured, capped
        assert sum(sleeps.waits) == pytest.approx(fault.wait * injected)
    else:
        assert all(WAIT_INITIAL <= w <= WAIT_MAX + WAIT_INITIAL for w in sleeps.waits), max(sleeps.waits)


def a_later_page(body: Any) -> bool:
    return isinstance(body, dict) and body.get("paginate", {}).get("page", 1) > 1


def test_an_empty_later_page_that_was_announced_fails_instead_of_dropping_rows(
    emu: ButlrEmulator, baseline: Run, sleeps: SleepRecorder
) -> None:
    """Page 1 announced 3 pages; page 2 comes back empty: the export stops, it never drops rows."""
    emu.faults.add(path=REPORTING, kind="empty_data", when=a_later_page, at_calls=[7])
    rows: list[Row] = []
    with pytest.raises(
        ButlrDataError, match=r"empty page \d of the 3 it announced .* room_occupancy/mean 2 rooms"
    ):
        rows.extend(run_export_rows(emu))
    assert rows == baseline.rows[:36]  # the 3 units before it, whole (12 rows each); nothing of the 4th


# --- GraphQL partial data -----------------------------------------------------------------------


def test_graphql_partial_data_with_errors_is_never_returned_as_complete(
    emu: ButlrEmulator, sleeps: SleepRecorder
) -> None:
    calls = 200
    with ButlrHook(max_retries=MAX_RETRIES, retry_wait_initial=WAIT_INITIAL, retry_wait_max=WAIT_MAX) as hook:
        complete = hook.get_hives()
        rule = emu.faults.add(path=GRAPHQL, kind="graphql_partial", rate=RATE, seed=SEED)
        answers: list[Any] = []
        failures: list[ButlrGraphQLError] = []
        for _ in range(calls):
            try:
                answers.append(hook.get_hives())
            except ButlrGraphQLError as err:
                failures.append(err)
    assert rule.injected >= 0.1 * calls
    assert len(failures) == rule.injected and len(answers) == calls - rule.injected
    assert all(answer == complete for answer in answers)  # a success is the whole answer
    for failure in failures:  # says what failed and keeps the partial data for inspection
        assert failure.endpoint == GRAPHQL and failure.status is None
        assert "[INTERNAL_SERVER_ERROR] hives:" in str(failure)
        assert failure.errors[-1]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert failure.data == {"hives": {"data": complete}}
    assert emu.counters.requests(GRAPHQL) == calls + 1  # errors are not retried
    assert emu.counters.logins == 1 and not sleeps.waits


# --- beyond the retry budget: the operator fails cleanly ------------------------------------------

BUDGET_RETRIES = 2
FIRST_FAULTY_CALL = 4  # three pages succeed first, so rows were already streamed to the temp file


@dataclass(frozen=True)
class Exhausting:
    name: str
    rule: dict[str, Any]
    error: type[ButlrError]
    status: str  # how the message names the status
    attempts: int = BUDGET_RETRIES + 1
    conn: dict[str, Any] = field(default_factory=dict)


EXHAUSTING = [
    # 429s use no retries but a time budget: Retry-After 1 s (at least the backoff, 0.5, 1, 2 s) fits
    # twice into 2 s, so the third answer 429 ends it, as max_retries=2 would have
    Exhausting(
        "429",
        {"kind": "status", "status": 429, "retry_after": "1"},
        ButlrRateLimitError,
        "HTTP 429",
        conn={"max_retries": 0, "max_rate_limit_wait": 2},
    ),
    Exhausting("500", {"kind": "status", "status": 500}, ButlrAPIError, "HTTP 500"),
    Exhausting(
        "502 HTML",
        {"kind": "status", "status": 502, "body": "<html>Bad gateway</html>"},
        ButlrAPIError,
        "HTTP 502: (HTML error page)",
    ),
    Exhausting("503", {"kind": "status", "status": 503}, ButlrAPIError, "HTTP 503"),
    Exhausting("504", {"kind": "status", "status": 504}, ButlrAPIError, "HTTP 504"),
    Exhausting("reset", {"kind": "reset"}, ButlrAPIError, "connection broken mid-response"),
    Exhausting("dropped", {"kind": "drop"}, ButlrAPIError, "connection failed"),
    Exhausting(
        "read timeout",
        {"kind": "delay", "delay": 1.5},
        ButlrAPIError,
        "timed out",
        attempts=2,
        conn={"timeout": 1, "max_retries": 1},  # the shortest timeout a connection takes: 1 s
    ),
    Exhausting(
        "truncated JSON", {"kind": "truncated_json"}, ButlrDataError, "malformed JSON in a 200 answer"
    ),
    Exhausting("401 every time", {"kind": "unauthorized"}, ButlrAuthError, "HTTP 401", attempts=2),
]


@pytest.mark.parametrize("case", EXHAUSTING, ids=[c.name for c in EXHAUSTING])
def test_faults_beyond_the_budget_fail_the_task_without_a_file(
    emu: ButlrEmulator,
    sleeps: SleepRecorder,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    case: Exhausting,
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emu, **{"max_retries": BUDGET_RETRIES, **case.conn})
    )
    emu.faults.add(path=REPORTING, at_calls=range(FIRST_FAULTY_CALL, 10_000), **case.rule)
    start, stop = export_range()
    out = tmp_path / "exports" / "rooms.jsonl"
    task = ButlrReportingOperator(
        task_id="export",
        measurements="room_occupancy",
        rooms=export_rooms(emu),
        start=start.isoformat(),
        stop=stop.isoformat(),
        timezone=TZ,
        window_every="1h",
        max_ids_per_request=4,
        output_path=str(out),
    )
    with pytest.raises(case.error) as info:
        task.execute({})
    error, message = info.value, str(info.value)
    assert f"POST {REPORTING}" in message and case.status in message
    assert f"{case.attempts} attempt" in message
    assert TEST_CLIENT_SECRET not in message
    if isinstance(error, ButlrAPIError):
        assert (error.endpoint, error.attempts) == (REPORTING, case.attempts)
        if case.status.startswith("HTTP"):
            assert error.status == int(case.status.split()[1].rstrip(":"))
    reporting = [r for r in emu.counters.log if r.path == REPORTING]
    assert len(reporting) == FIRST_FAULTY_CALL - 1 + case.attempts  # the budget, not one request more
    assert [r.status for r in reporting[: FIRST_FAULTY_CALL - 1]] == [200] * (FIRST_FAULTY_CALL - 1)
    assert len(sleeps.waits) == (case.attempts - 1 if case.rule["kind"] != "unauthorized" else 0)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temporary file left behind either


def test_partial_topology_fails_a_site_export_before_any_reporting_request(
    emu: ButlrEmulator, tmp_path: Path
) -> None:
    """A site export resolves its rooms through GraphQL; partial data must not shrink the export."""
    emu.faults.add(path=GRAPHQL, kind="graphql_partial")
    out = tmp_path / "exports" / "site.jsonl"
    task = ButlrReportingOperator(
        task_id="export",
        measurements="room_occupancy",
        sites=[next(s.id for s in emu.org.sites if s.timezone == TZ)],
        local_day=FIRST_DAY,
        output_path=str(out),
    )
    with pytest.raises(ButlrGraphQLError, match=r"Butlr GraphQL returned errors: \[INTERNAL_SERVER_ERROR\]"):
        task.execute({})
    assert emu.counters.requests(REPORTING) == 0
    assert not out.exists() and not out.parent.exists()
