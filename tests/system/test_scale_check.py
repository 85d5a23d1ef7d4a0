"""The scale check's own parts (issue 27): the request-log reader and its 60-second-window counter,
the output comparison, the table, the logical dates and the command line (scripts/scale_check.py
runs the deployment itself)."""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))

from scale_check import MODES, logical_dates, parse_extra, parser
from scalecheck import arrivals, outputs, table

pytestmark = pytest.mark.airflow_independent


def log_line(at: dt.datetime, path: str, status: str = "200", ms: float = 2.0, method: str = "POST") -> str:
    stamp = at.strftime("%Y-%m-%d %H:%M:%S") + f",{at.microsecond // 1000:03d}"
    return f"{stamp} {method} {path} {status} {ms:.1f} ms"


T0 = dt.datetime(2026, 11, 26, 2, 29, 16, 788000)


# --- the request log --------------------------------------------------------------------------------


def test_a_request_line_is_read_with_its_arrival_time_its_path_and_status() -> None:
    found = arrivals.parse_line("2026-11-26 02:29:16,839 POST /api/v3/graphql 429 3.7 ms")
    assert found is not None
    assert found.at == pytest.approx(T0.timestamp() + 0.051 - 0.0037)  # answered minus duration
    assert (found.method, found.path, found.status) == ("POST", "/api/v3/graphql", 429)
    assert found.is_data and not found.is_login


def test_dropped_requests_logins_and_other_lines() -> None:
    dropped = arrivals.parse_line("2026-11-26 02:29:16,788 POST /api/v3/reporting dropped 10.0 ms")
    assert dropped is not None and dropped.status is None and dropped.is_data
    login = arrivals.parse_line(log_line(T0, "/api/v2/clients/login"))
    assert login is not None and login.is_login and not login.is_data
    for other in ("Butlr API emulator on http://127.0.0.1:8765", "", "Ctrl-C to stop.", "  TOKEN=$(curl ..."):
        assert arrivals.parse_line(other) is None


def test_the_log_leaves_the_admin_api_out_and_sorts_by_arrival() -> None:
    lines = [
        log_line(T0 + dt.timedelta(seconds=2), "/api/v3/reporting", ms=1500.0),  # arrived at 0.5 s
        log_line(T0 + dt.timedelta(seconds=1), "/api/v3/graphql"),
        log_line(T0, "/_emulator/counters", method="GET"),
        log_line(T0, "/_emulator", method="GET"),
        "noise",
    ]
    found = arrivals.parse_log(lines)
    assert [a.path for a in found] == ["/api/v3/reporting", "/api/v3/graphql"]


def brute_force_busiest(times: list[float], window: float = 60.0) -> int:
    return max((sum(1 for t in times if start <= t < start + window) for start in times), default=0)


def test_the_busiest_window_is_half_open_and_exact() -> None:
    assert arrivals.busiest_window([]) == (0, None)
    assert arrivals.busiest_window([5.0]) == (1, 5.0)
    # 0 and 60 are 60 s apart: never in one window [t, t + 60).
    assert arrivals.busiest_window([0.0, 60.0]) == (1, 0.0)
    assert arrivals.busiest_window([0.0, 59.999]) == (2, 0.0)
    # 60 arrivals a second apart, then a burst of 10 at 100 s: [41, 101) holds 19 + 10.
    times = [float(i) for i in range(60)] + [100.0] * 10
    assert arrivals.busiest_window(times) == (60, 0.0)
    times = [float(i) for i in range(60)] + [59.5] * 10
    assert arrivals.busiest_window(sorted(times)) == (70, 0.0)


def test_the_busiest_window_agrees_with_brute_force() -> None:
    rng = random.Random(27)
    for _ in range(200):
        times = sorted(rng.uniform(0, 300) for _ in range(rng.randint(1, 80)))
        assert arrivals.busiest_window(times)[0] == brute_force_busiest(times)


def test_summary_counts_429s_logins_and_splits_the_logins_at_the_revocation() -> None:
    at = [T0 + dt.timedelta(seconds=s) for s in range(10)]
    lines = [
        log_line(at[0], "/api/v2/clients/login"),
        log_line(at[1], "/api/v3/graphql"),
        log_line(at[2], "/api/v3/reporting", "429"),
        log_line(at[3], "/api/v2/clients/login", "401"),  # a refused login is no login
        log_line(at[4], "/api/v3/reporting"),
        log_line(at[6], "/api/v2/clients/login"),
        log_line(at[7], "/api/v4/reporting/stats"),
        log_line(at[8], "/_emulator/tokens/revoke"),
    ]
    traffic = arrivals.summarize(arrivals.parse_log(lines), split=at[5].timestamp())
    assert (traffic.requests, traffic.data_requests, traffic.rejected) == (7, 4, 1)
    assert (traffic.logins, traffic.logins_before, traffic.logins_after) == (2, 1, 1)
    assert traffic.busiest == 4
    assert traffic.rejected_share == pytest.approx(0.25)
    assert arrivals.summarize([], split=None).rejected_share == 0.0


# --- the output comparison --------------------------------------------------------------------------


def write_day(base: Path, day: str, rows: dict[str, list[str]], requests: int = 10) -> None:
    files = []
    for rel, lines in rows.items():
        path = base / day / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines))
        files.append({"path": str(path), "rows": len(lines), "requests": requests, "resplits": 0})
    summary = {"day": day, "files": files, "weekly_stats": [{"floor": "f1", "mean": 1.5}]}
    (base / day / "summary.json").write_text(json.dumps(summary, indent=2))


ROWS = {
    "site_a/occupancy.jsonl": ['{"time":"00:00","value":1}', '{"time":"01:00","value":2}'],
    "site_a/traffic.jsonl": ['{"time":"00:00","value":0}'],
}


def test_identical_days_match_whatever_their_base_path_and_request_counts(tmp_path: Path) -> None:
    write_day(tmp_path / "reference", "2026-11-26", ROWS, requests=10)
    write_day(tmp_path / "load", "2026-11-26", ROWS, requests=37)  # 429s and retries: more requests
    result = outputs.compare_days(tmp_path / "reference", tmp_path / "load", ["2026-11-26"])
    assert result.matches, result.problems
    assert (result.files, result.rows) == (3, 3)


def test_missing_extra_and_differing_rows_are_named(tmp_path: Path) -> None:
    write_day(tmp_path / "reference", "2026-11-26", ROWS)
    changed = {
        "site_a/occupancy.jsonl": ['{"time":"00:00","value":1}', '{"time":"01:00","value":3}'],
        "site_a/partial.jsonl.tmp": ["{}"],
    }
    write_day(tmp_path / "load", "2026-11-26", changed)
    result = outputs.compare_days(tmp_path / "reference", tmp_path / "load", ["2026-11-26", "2026-11-25"])
    assert not result.matches
    problems = "\n".join(result.problems)
    assert "2026-11-25: no reference files" in problems
    assert "site_a/partial.jsonl.tmp: not in the reference" in problems
    assert "site_a/occupancy.jsonl: 2 rows, reference 2; first difference at row 2" in problems
    assert "site_a/traffic.jsonl: missing" in problems
    assert "summary.json: differs" in problems  # its files list differs too


def test_a_truncated_file_and_a_run_that_wrote_nothing(tmp_path: Path) -> None:
    write_day(tmp_path / "reference", "2026-11-26", ROWS)
    write_day(
        tmp_path / "load",
        "2026-11-26",
        {**ROWS, "site_a/occupancy.jsonl": ROWS["site_a/occupancy.jsonl"][:1]},
    )
    problems = outputs.compare_days(tmp_path / "reference", tmp_path / "load", ["2026-11-26"]).problems
    assert "site_a/occupancy.jsonl: 1 rows, reference 2; first difference at row 2" in "\n".join(problems)
    nothing = outputs.compare_days(tmp_path / "reference", tmp_path / "empty", ["2026-11-26"])
    assert not nothing.matches and len(nothing.problems) == 3
    assert not outputs.Comparison().matches  # nothing compared is no match


def test_summary_normalization_replaces_the_base_and_drops_the_request_counters(tmp_path: Path) -> None:
    text = json.dumps({"files": [{"path": f"{tmp_path}/d/x.jsonl", "requests": 3, "resplits": 1, "rows": 2}]})
    assert outputs.normalized_summary(text, tmp_path) == {
        "files": [{"path": "<base_path>/d/x.jsonl", "rows": 2}]
    }


# --- the table --------------------------------------------------------------------------------------


def passing() -> table.Figures:
    return table.Figures(
        runs=10,
        limit=60,
        workers=3,
        runs_ok=10,
        clean_requests=720,
        requests=722,
        data_requests=721,
        rejected=7,
        busiest=60,
        logins_before=1,
        logins_after=1,
        revoked=True,
        wall_seconds=900.0,
        outputs_match=True,
        files_compared=100,
        rows_compared=97680,
    )


def test_the_floor_and_a_table_that_meets_every_target() -> None:
    figures = passing()
    assert figures.floor_seconds == 720.0  # 720 requests at 60 per minute
    rows = table.rows(figures)
    assert table.failed(rows) == []
    text = table.markdown(rows)
    lines = text.splitlines()
    assert lines[0] == "| Figure | Measured | Target | Met |"
    assert lines[1] == "|---|---|---|---|"
    assert all(line.startswith("| ") and line.endswith(" |") and line.count(" | ") >= 3 for line in lines[2:])
    assert "| wall time (first trigger to last run end) | 15.0 min (900 s) = 1.25x floor |" in text
    assert "| 429 answers | 7 (1.0% of data requests) | <= 1% | yes |" in text
    assert "| logins after every token was revoked | 1 | exactly 1 | yes |" in text


@pytest.mark.parametrize(
    ("change", "missed"),
    [
        ({"failed_tasks": 1}, "failed tasks (final state)"),
        ({"failed_attempts": 2}, "failed task tries (retried; the killed worker's left out)"),
        ({"rejected": 8}, "429 answers"),
        ({"busiest": 61}, "most arrivals in any 60 s window"),
        ({"logins_before": 3}, "logins (before the revocation)"),
        ({"logins_after": 0}, "logins after every token was revoked"),
        ({"logins_after": 2}, "logins after every token was revoked"),
        ({"wall_seconds": 901.0}, "wall time (first trigger to last run end)"),
        ({"outputs_match": False}, "output files match a clean run row for row"),
        ({"secret_hits": 1}, "client secret / token in any scanned byte"),
    ],
)
def test_each_missed_target_is_flagged(change: dict[str, object], missed: str) -> None:
    figures = passing()
    for key, value in change.items():
        setattr(figures, key, value)
    rows = table.rows(figures)
    assert [r.figure for r in table.failed(rows)] == [missed]
    assert f"| {missed} |" in table.markdown(rows) and "**NO**" in table.markdown(rows)


def test_failed_runs_fail_the_wall_time_too_since_their_work_was_not_done() -> None:
    figures = passing()
    figures.runs_ok, figures.runs_failed, figures.wall_seconds = 5, 5, 600.0
    rows = table.rows(figures)
    assert [r.figure for r in table.failed(rows)] == [
        "runs ok / failed",
        "wall time (first trigger to last run end)",
    ]
    wall = next(r for r in rows if r.figure.startswith("wall time"))
    assert wall.value == "10.0 min (600 s) = 0.83x floor (failed runs did not do all their work)"


def test_killed_tries_are_reported_without_a_target_and_no_revocation_means_one_login_row() -> None:
    figures = passing()
    figures.killed_attempts, figures.revoked = 4, False
    rows = table.rows(figures)
    killed = next(r for r in rows if r.figure == "task tries lost with the killed worker")
    assert (killed.value, killed.ok) == ("4", None)
    assert [r.figure for r in rows if r.figure.startswith("logins")] == ["logins"]
    assert table.failed(rows) == []


def test_no_floor_is_no_pass() -> None:
    figures = passing()
    figures.clean_requests = 0
    assert "wall time (first trigger to last run end)" in [
        r.figure for r in table.failed(table.rows(figures))
    ]


# --- dates and the command line ---------------------------------------------------------------------


def test_each_run_exports_another_day_long_over() -> None:
    dates = logical_dates(3, dt.date(2026, 12, 5))
    assert [d.isoformat() for d in dates] == [
        "2026-11-28T09:00:00+00:00",
        "2026-11-27T09:00:00+00:00",
        "2026-11-26T09:00:00+00:00",
    ]  # the DAG exports the day before: 2026-11-27, -26, -25


def test_modes_and_connection_extras() -> None:
    assert MODES == {"ci": (5, 120), "full": (10, 60)}
    assert parse_extra(["token_cache_dir=/x", "max_requests_per_minute=60", "flag=true"]) == {
        "token_cache_dir": "/x",
        "max_requests_per_minute": 60,
        "flag": True,
    }
    args = parser().parse_args(["--full", "--report-only", "--conn-extra", "a=b"])
    assert args.full and args.report_only and args.conn_extra == ["a=b"]


# --- why a try failed -------------------------------------------------------------------------------


def test_the_cause_of_a_failed_try_is_its_logged_exception_type(tmp_path: Path) -> None:
    from scalecheck import tasklogs

    failed = [
        json.dumps({"level": "info", "event": "starting"}),
        json.dumps(
            {
                "level": "error",
                "event": "Task failed with exception",
                "error_detail": [{"exc_type": "ButlrRateLimitError", "exc_value": "429 ..."}],
            }
        ),
    ]
    assert tasklogs.failure_cause(failed) == "ButlrRateLimitError"
    assert tasklogs.failure_cause(['{"level": "info"}', "not json", '"error_detail" but not json']) == (
        tasklogs.NO_EXCEPTION
    )
    worker_1, worker_2 = tmp_path / "w1", tmp_path / "w2"
    mapped = tasklogs.attempt_log(worker_2, "dag", "run", "export", 2, 1)
    assert mapped == worker_2 / "logs/dag_id=dag/run_id=run/task_id=export/map_index=2/attempt=1.log"
    mapped.parent.mkdir(parents=True)
    mapped.write_text("\n".join(failed))
    plain = tasklogs.attempt_log(worker_1, "dag", "run", "plan", -1, 2)
    assert plain == worker_1 / "logs/dag_id=dag/run_id=run/task_id=plan/attempt=2.log"
    plain.parent.mkdir(parents=True)
    plain.write_text('{"level": "info", "event": "killed before it could log"}\n')
    tries = [("run", "export", 2, 1), ("run", "plan", -1, 2), ("run", "summary", -1, 1)]
    assert tasklogs.causes([worker_1, worker_2], "dag", tries) == {
        "ButlrRateLimitError": 1,
        tasklogs.NO_EXCEPTION: 1,
        tasklogs.NO_LOG: 1,
    }
    assert table.causes({"B": 1, "A": 1, "C": 5}) == " (C 5, A 1, B 1)"
    assert table.causes({}) == ""
