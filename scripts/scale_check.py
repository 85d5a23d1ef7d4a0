#!/usr/bin/env python3
"""The scale check (issue 27): N daily exports at once on a CeleryExecutor deployment against an
emulator that enforces a rate limit, with a worker killed, every token revoked and Redis restarted
mid-run; then the secret scan and one table of figures against issue 27's targets.

Started by ``scripts/scale_check.sh`` (see docs/scale-check.md). In one work directory, on free
ports on 127.0.0.1 only, it starts PostgreSQL (metadata DB), Redis (Celery broker), the emulator
(``--rate-limit-per-minute``), ``airflow api-server``, ``scheduler``, ``dag-processor`` and
``triggerer`` (the "control host") and three ``airflow celery worker --concurrency 2``, each with
its own ``AIRFLOW_HOME``, token directory and log server port (three "hosts"). Meanwhile it
writes a clean reference: one ``dag.test()`` run per day, one at a time, against an unlimited
emulator of the same seed. Then:

1. triggers N runs of ``butlr_daily_occupancy_export`` at once, each for another day;
2. at 20 % of the work done (data requests answered, against the clean runs'), SIGKILLs the session of the worker running the most export tasks
   (its process group and its task processes) and starts it again 10 s later;
3. at 40 %, revokes every token (``POST /_emulator/tokens/revoke {}``);
4. at 60 %, restarts Redis (graceful: SIGTERM, which saves its snapshot, then a new server);
5. waits for every run; dumps PostgreSQL and Redis; stops everything by process group; scans every
   log, home, token directory, export and the two dumps for the client secret and every issued
   token; compares every output file with the reference; prints the table (Markdown).

Exit code: 0 when every target is met (or with ``--report-only``), 1 when one is missed or the
check itself failed (a component that does not come up, a timeout before the runs were triggered).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploycheck.processes import Component, port_is_free
from deploycheck.scans import error_lines, iter_files, scan_secrets, secret_needles
from deployment_check import CheckFailed, Interrupted, Timings, process_line, signals_unwind, wait_for
from scalecheck import arrivals, outputs, table, tasklogs
from scalecheck.deployment import CLIENT_SECRET, EXPORT, REDIS_CONN_ID, REPO, Host, Options, ScaleDeployment
from scalecheck.metadata import OK_STATES, TaskTry

MODES = {  # runs, the server's limit per minute
    "ci": (5, 120),  # the same overload as --full with a 3-minute floor
    "full": (10, 60),  # issue 27's scenario: a 12-minute floor (720 clean data requests)
}
EVENTS = ("kill", "revoke", "redis")
EVENT_AT = {"kill": 0.20, "revoke": 0.40, "redis": 0.60}  # share of the work done (data requests)
RESTART_AFTER = 10.0  # seconds between the worker's SIGKILL and its new start
FINAL = frozenset({"success", "failed"})


@dataclass
class Reference:
    """The clean runs: per logical date, data requests and task instances."""

    folder: Path
    runs: dict[str, dict[str, Any]]

    @property
    def data_requests(self) -> int:
        return sum(int(r["data_requests"]) for r in self.runs.values())

    @property
    def tasks(self) -> int:
        return sum(int(r["tasks"]) for r in self.runs.values())


@dataclass
class Load:
    """What happened during the load (the table's figures come from here, the logs and the DB)."""

    run_ids: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    started: float = 0.0  # epoch seconds just before the first trigger
    events: list[str] = field(default_factory=list)
    killed: set[tuple[str, str, int, int]] = field(default_factory=set)
    revoked_at: float | None = None
    timed_out: bool = False

    def note(self, text: str) -> None:
        line = f"[{time.time() - self.started:6.1f} s] {text}"
        self.events.append(line)
        print(f">> {line}", flush=True)


def logical_dates(runs: int, today: dt.date) -> list[dt.datetime]:
    """One logical date per run, 09:00Z each; run i exports day ``today - 8 - i`` (long final)."""
    return [dt.datetime.combine(today - dt.timedelta(days=7 + i), dt.time(9), dt.UTC) for i in range(runs)]


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- phases ----------------------------------------------------------------------------------------


def start_reference(dep: ScaleDeployment, dates: list[dt.datetime]) -> Component:
    """The clean reference runs, in the background while the deployment starts."""
    folder = dep.work / "reference"
    argv = [
        sys.executable,
        str(REPO / "scripts" / "scalecheck" / "reference.py"),
        "--home",
        str(folder / "airflow-home"),
        "--out",
        str(folder / "exports"),
        "--seed",
        str(dep.options.seed),
    ]
    for moment in dates:
        argv += ["--logical-date", iso(moment)]
    return dep.start("reference", argv, dep.base_env)


def finish_reference(dep: ScaleDeployment, component: Component) -> Reference:
    wait_for("the clean reference runs", lambda: not component.running(), 600, [])
    code = component.process.returncode if component.process else None
    if code != 0:
        raise CheckFailed(f"the clean reference runs failed ({code}):\n{component.tail(30)}")
    folder = dep.work / "reference" / "exports"
    return Reference(folder, json.loads((folder / "reference.json").read_text()))


def bring_up(dep: ScaleDeployment, timings: Timings) -> None:
    dep.start_services()
    timings.mark(f"postgres (port {dep.postgres.port}) and redis (port {dep.redis.port}) up")
    dep.start_emulator()
    dep.migrate()
    timings.mark("airflow db migrate (PostgreSQL)")
    dep.start_airflow()
    wait_for("the api-server", dep.api.up, 180, dep.airflow_components())

    def parsed() -> bool:
        errors = dep.db.import_errors()
        if errors:
            raise CheckFailed(f"the dag-processor could not import: {errors}")
        return EXPORT in dep.db.dag_ids()

    wait_for(f"the dag-processor to parse {EXPORT}", parsed, 240, dep.airflow_components())
    wait_for(
        f"{len(dep.hosts)} Celery workers to come up",
        lambda: all("ready." in (c.tail(200)) for c in (h.component for h in dep.hosts) if c),
        180,
        dep.airflow_components(),
    )
    timings.mark(f"airflow up: api-server, scheduler, dag-processor, triggerer, {len(dep.hosts)} workers")


def kill_worker(dep: ScaleDeployment, load: Load, done: float) -> Host:
    """SIGKILL the session of the worker with the most running export tasks; answers its host."""
    running = dep.db.running(EXPORT, load.run_ids)
    by_host: dict[str, list[TaskTry]] = {h.name: [] for h in dep.hosts}
    for task in running:
        host = dep.worker_of(task.pid)
        if host is not None:
            by_host[host.name].append(task)

    def weight(name: str) -> tuple[int, int]:
        tasks = by_host[name]
        return (sum(t.task_id.startswith("export_") for t in tasks), len(tasks))

    name = max(by_host, key=weight)
    host = next(h for h in dep.hosts if h.name == name)
    assert host.component is not None
    lines = [process_line(pid) for pid in host.component.members()]
    killed = host.component.kill(signal.SIGKILL)
    if host.component.members():
        raise CheckFailed(f"processes of {host.name} survived SIGKILL: {host.component.members()}")
    if not port_is_free(host.log_port):
        raise CheckFailed(f"{host.name}'s log server port {host.log_port} is still bound after SIGKILL")
    load.killed |= {t.key for t in by_host[name]}
    tasks = ", ".join(f"{t.run_id}/{t.task_id}[{t.map_index}]" for t in by_host[name]) or "none"
    load.note(
        f"SIGKILL to {host.name}'s session ({len(killed)} processes; {done:.0%} of the work done) running {tasks}"
    )
    print("   " + "\n   ".join(lines), flush=True)
    return host


def progress(dep: ScaleDeployment, load: Load, reference: Reference) -> tuple[float, dict[str, str]]:
    """(share of the work done: data requests answered 200 since the trigger over the clean runs' data
    requests, run states)."""
    answered = sum(
        1
        for a in arrivals.read_log(dep.components["emulator"].log)
        if a.at >= load.started and a.is_data and a.status == 200
    )
    return answered / max(reference.data_requests, 1), dep.db.run_states(EXPORT)


def run_load(
    dep: ScaleDeployment, load: Load, reference: Reference, events: set[str], timeout: float
) -> None:
    """Trigger the runs, fire the events when their share of the work is done, wait for the end."""
    dep.api.unpause(EXPORT)
    load.started = time.time()
    for moment in logical_dates(dep.options.runs, dt.datetime.now(dt.UTC).date()):
        day = (moment - dt.timedelta(days=1)).date().isoformat()
        load.run_ids.append(dep.api.trigger(EXPORT, iso(moment), f"scalecheck__{day}"))
        load.days.append(day)
    load.note(f"{len(load.run_ids)} runs triggered: days {load.days[-1]} .. {load.days[0]}")
    floor = reference.data_requests * 60.0 / dep.options.limit
    pending = [e for e in EVENTS if e in events]
    restart_at: float | None = None
    killed: Host | None = None
    deadline = time.monotonic() + timeout
    while True:
        done, states = progress(dep, load, reference)
        elapsed = time.time() - load.started
        finished = all(states.get(r) in FINAL for r in load.run_ids)
        for event in list(pending):
            # By the share of the work done; by time when the work stalls (twice the floor's pace).
            if finished or not (done >= EVENT_AT[event] or elapsed >= EVENT_AT[event] * floor * 2):
                continue
            if event == "kill":
                exporting = any(t.task_id.startswith("export_") for t in dep.db.running(EXPORT, load.run_ids))
                if not exporting and elapsed < EVENT_AT[event] * floor * 3:
                    continue  # mid-export: wait for an export task to run
                killed = kill_worker(dep, load, done)
                restart_at = time.monotonic() + RESTART_AFTER
            elif event == "revoke":
                dep.admin.revoke_tokens()
                load.revoked_at = time.time()
                load.note(f"every token revoked ({done:.0%} of the work done)")
            elif event == "redis":
                down = dep.restart_redis()
                load.note(f"redis restarted (down {down:.1f} s, {done:.0%} of the work done)")
            pending.remove(event)
        if killed is not None and restart_at is not None and time.monotonic() >= restart_at:
            dep.start_worker(killed)
            load.note(f"{killed.name} started again")
            killed, restart_at = None, None
        if finished and killed is None:
            break
        for component in dep.control_components():
            if not component.running():
                raise CheckFailed(f"{component.name} exited during the load:\n{component.tail(30)}")
        if time.monotonic() > deadline:
            load.timed_out = True
            load.note(f"timed out after {timeout:.0f} s: runs {states}")
            break
        time.sleep(2.0)
    if killed is not None:  # the runs ended before the restart was due
        dep.start_worker(killed)
    load.note(f"runs final: {sorted(states.get(r, '?') for r in load.run_ids)}")


def settle(dep: ScaleDeployment) -> None:
    """A run is final in the DB before its last task process has exited: let them finish."""
    workers = [h.component for h in dep.hosts if h.component is not None]
    try:
        wait_for(
            "the last task processes to exit",
            lambda: not any(c.other_groups() for c in workers),
            60,
            [],
        )
    except CheckFailed as exc:
        print(f">> {exc}", flush=True)


# --- figures ---------------------------------------------------------------------------------------


def measure(dep: ScaleDeployment, load: Load, reference: Reference, figures: table.Figures) -> None:
    states = dep.db.run_states(EXPORT)
    figures.runs_ok = sum(1 for r in load.run_ids if states.get(r) == "success")
    figures.runs_failed = len(load.run_ids) - figures.runs_ok
    current, earlier = dep.db.tries(EXPORT, load.run_ids)
    figures.failed_tasks = sum(1 for t in current if t.state not in OK_STATES)
    failed_tries = [t for t in earlier if t.state not in OK_STATES and t.key not in load.killed]
    figures.killed_attempts = sum(1 for t in earlier if t.key in load.killed)
    figures.failed_attempts = len(failed_tries)
    figures.failure_causes = dict(
        tasklogs.causes((h.home for h in dep.hosts), EXPORT, (t.key for t in failed_tries))
    )
    figures.clean_requests = reference.data_requests
    end = dep.db.run_end(EXPORT, load.run_ids)
    figures.wall_seconds = (end.timestamp() if end else time.time()) - load.started
    if load.timed_out:
        figures.wall_seconds = max(figures.wall_seconds, time.time() - load.started)
        figures.notes.append("the load timed out: unfinished runs count as failed")
    log = dep.components["emulator"].log
    seen = [a for a in arrivals.read_log(log) if a.at >= load.started - 1.0]
    traffic = arrivals.summarize(seen, split=load.revoked_at)
    figures.requests, figures.data_requests = traffic.requests, traffic.data_requests
    figures.rejected, figures.busiest = traffic.rejected, traffic.busiest
    figures.logins_before, figures.logins_after = traffic.logins_before, traffic.logins_after
    figures.revoked = load.revoked_at is not None
    comparison = outputs.compare_days(reference.folder, dep.exports, load.days)
    figures.outputs_match = comparison.matches
    figures.files_compared, figures.rows_compared = comparison.files, comparison.rows
    figures.notes += [f"output: {p}" for p in comparison.problems[:20]]
    if len(comparison.problems) > 20:
        figures.notes.append(f"output: ... {len(comparison.problems) - 20} more")


def scan(dep: ScaleDeployment, tokens: list[str], figures: table.Figures) -> None:
    """Every byte the deployment wrote (the emulator's own log and the reference left out)."""
    dumps = dep.work / "dumps"
    dumps.mkdir(exist_ok=True)
    pg_dump = dep.postgres.dump(dumps / "airflow.sql")
    rdb = dep.redis.dump()
    roots = [dep.logs, dep.control.root, *(h.root for h in dep.hosts), dep.exports, pg_dump, rdb]
    # The emulator prints its credentials at start (its own log, not the deployment's output).
    exclude = [dep.components["emulator"].log, dep.components["reference"].log]
    files, size, hits = scan_secrets(roots, secret_needles([CLIENT_SECRET, *tokens]), exclude=exclude)
    figures.secret_hits = len(hits)
    figures.notes += [f"secret: {h}" for h in hits[:20]]
    infra = [dep.postgres.password, dep.redis.password, dep.fernet_key, dep.jwt_secret]
    _, _, infra_hits = scan_secrets(roots, secret_needles(infra), exclude=exclude)
    figures.notes.append(
        f"scanned {files} files, {size / 1e6:.1f} MB (homes, logs, token dirs, exports, pg_dump, Redis dump) "
        f"for the client secret and {len(tokens)} issued tokens: {len(hits)} hits; "
        f"deployment passwords and keys (PostgreSQL, Redis, Fernet, JWT; reported, no target): {len(infra_hits)} hits"
    )
    figures.notes += [f"deployment secret: {h}" for h in infra_hits[:10]]


def print_report(
    figures: table.Figures, load: Load, mode: str, dep: ScaleDeployment, timings: Timings
) -> list[table.Row]:
    rows = table.rows(figures)
    o = dep.options
    print(
        f"\n=== scale check ({mode}): {o.runs} daily exports, server limit {o.limit}/min, {o.workers} workers x {o.concurrency}"
    )
    print(
        f"connection: max_requests_per_minute={o.limit if o.client_limit else 'unset'}, token_cache={o.token_cache}"
        + (f", extra {json.dumps(o.conn_extra)}" if o.conn_extra else "")
        + f"; task retries {o.retries} ({o.retry_delay} s apart); heartbeat timeout {o.heartbeat_timeout} s\n"
    )
    print(table.markdown(rows))
    print("\nevents:")
    for line in load.events:
        print(f"  {line}")
    for note in figures.notes:
        print(f"  {note}")
    for phase, seconds in timings.phases:
        print(f"  {seconds:6.1f} s  {phase}")
    print(f"total: {timings.total:.0f} s")
    return rows


# --- main ------------------------------------------------------------------------------------------


def parse_extra(pairs: list[str]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--conn-extra wants KEY=VALUE, got {pair!r}")
        try:
            extra[key] = json.loads(value)
        except ValueError:
            extra[key] = value
    return extra


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--full", action="store_true", help="issue 27's size: 10 runs, 60/min (default: 5 runs, 120/min)"
    )
    p.add_argument("--runs", type=int, help="daily exports at once (overrides the mode)")
    p.add_argument("--limit", type=int, help="the server's limit per minute (overrides the mode)")
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=2, help="each worker's --concurrency")
    p.add_argument("--retries", type=int, default=3, help="[core] default_task_retries (default 3)")
    p.add_argument(
        "--retry-delay", type=int, default=60, help="[core] default_task_retry_delay, s (default 60)"
    )
    p.add_argument(
        "--heartbeat-timeout", type=int, default=60, help="[scheduler] task_instance_heartbeat_timeout, s"
    )
    p.add_argument("--max-active-runs", type=int, default=0, help="the export DAG's limit (default: --runs)")
    p.add_argument("--token-cache", default="host", help="the connection extra token_cache (default host)")
    p.add_argument(
        "--conn-extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"another connection extra (JSON value or string), e.g. a Redis connection id: {REDIS_CONN_ID}",
    )
    p.add_argument("--no-client-limit", action="store_true", help="leave max_requests_per_minute unset")
    p.add_argument(
        "--events", default=",".join(EVENTS), help=f"mid-run events, comma-separated from {EVENTS} ('' none)"
    )
    p.add_argument("--timeout", type=float, help="seconds the load may take (default: max(600, 3x floor))")
    p.add_argument(
        "--report-only", action="store_true", help="exit 0 when targets are missed (the table still says so)"
    )
    p.add_argument(
        "--work-dir", type=Path, help="keep everything here (default: a temp dir, removed on success)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir on success too")
    p.add_argument("--seed", type=int, default=42, help="the emulator's organisation")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    mode = "full" if args.full else "ci"
    runs, limit = args.runs or MODES[mode][0], args.limit or MODES[mode][1]
    events = {e.strip() for e in args.events.split(",") if e.strip()}
    if events - set(EVENTS):
        raise SystemExit(f"--events: unknown {sorted(events - set(EVENTS))}; known: {EVENTS}")
    options = Options(
        runs=runs,
        limit=limit,
        workers=args.workers,
        concurrency=args.concurrency,
        seed=args.seed,
        retries=args.retries,
        retry_delay=args.retry_delay,
        heartbeat_timeout=args.heartbeat_timeout,
        max_active_runs=args.max_active_runs,
        token_cache=args.token_cache,
        conn_extra=parse_extra(args.conn_extra),
        client_limit=not args.no_client_limit,
    )
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="butlr-scale-check-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(
        f">> scale check ({mode}) in {work}: {runs} runs, limit {limit}/min, events {sorted(events)}",
        flush=True,
    )
    timings, load = Timings(), Load()
    figures = table.Figures(runs=runs, limit=limit, workers=args.workers)
    dep = ScaleDeployment(work, options)
    ok = harness_ok = False
    with signals_unwind():
        try:
            dates = logical_dates(runs, dt.datetime.now(dt.UTC).date())
            reference_run = start_reference(dep, dates)  # while the deployment starts
            bring_up(dep, timings)
            reference = finish_reference(dep, reference_run)
            timings.mark(
                f"clean reference: {len(reference.runs)} runs, {reference.data_requests} data requests, "
                f"{reference.tasks} tasks (floor {reference.data_requests * 60 / limit:.0f} s at {limit}/min)"
            )
            floor = reference.data_requests * 60.0 / limit
            run_load(dep, load, reference, events, args.timeout or max(600.0, 3 * floor))
            timings.mark("load")
            settle(dep)
            measure(dep, load, reference, figures)
            tokens = dep.admin.issued_tokens()
            failures = dep.stop_airflow()
            if failures:
                raise CheckFailed("could not stop: " + "; ".join(failures))
            scan(dep, tokens, figures)
            errors = error_lines(
                iter_files([dep.logs, *(h.home / "logs" for h in [dep.control, *dep.hosts])])
            )
            figures.notes.append(
                f"error-level lines in the components' and tasks' logs (reported, no target): {len(errors)}"
            )
            dep.stop_all()
            timings.mark("figures, dumps, scans, everything stopped")
            rows = print_report(figures, load, mode, dep, timings)
            harness_ok = True
            missed = table.failed(rows)
            ok = not missed
            if missed:
                print(f"\nSCALE CHECK: {len(missed)} targets missed: {', '.join(r.figure for r in missed)}")
                if args.report_only:
                    print("(--report-only: exit code 0)")
            else:
                print(f"\nSCALE CHECK PASSED in {timings.total:.0f} s")
        except (CheckFailed, Interrupted, KeyboardInterrupt) as exc:
            print(f"\nSCALE CHECK FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            print(dep.tails(), file=sys.stderr)
        except Exception:  # a bug or an unexpected answer: the traceback, the logs, then the cleanup
            traceback.print_exc()
            print("\nSCALE CHECK FAILED (unexpected error above)", file=sys.stderr)
            print(dep.tails(), file=sys.stderr)
        finally:
            try:
                dep.stop_all()
            except (CheckFailed, RuntimeError) as exc:
                harness_ok = ok = False
                print(f"SCALE CHECK FAILED: {exc}", file=sys.stderr)
    if ok and not args.keep and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f">> everything is under {work}")
    if args.report_only:
        return 0 if harness_ok else 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
