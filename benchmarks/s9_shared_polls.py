"""Scenario 9: many deferred sensors in one triggerer, requests per poke interval against N.

Method: N ``ButlrTrigger`` instances, each the trigger of a deferred ``ButlrDataCompleteSensor`` on
one room (the plan the sensor itself builds: the last hour, 5-minute check windows, the room's site
timezone), run on one event loop in this process as a triggerer runs them, against the emulator
process. The rooms belong to three sites, taken in turn. The emulator flags its last three hours
``data_incomplete``, so no sensor is ever satisfied and every trigger polls until its deadline:
``ROUNDS`` poke intervals of ``INTERVAL`` seconds (real time). Contenders: the triggers as they are
(polls on the clock grid, shared per triggerer) and with ``share_polls=False`` (each sleeps its
interval and sends its own requests: the behaviour before issue 27). One login before each run,
so logins do not count. Figures: reporting requests the emulator answered, the polls the triggers
made, requests per poke interval (requests / polls per trigger), what that is per minute at a
60-second poke interval, and the CPU seconds of this process (the triggerer's cost) per interval.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.common import BENCH_CONN_ID, Line, ScenarioResult, Settings, Target, ratio
from benchmarks.emulator_process import EmulatorProcess

GRID_OFFSET = 0.25  # the triggers' clock grid (airflow_provider_butlr.polling.sharing)

KEY = "shared_polls"
TITLE = "Deferred data-complete sensors in one triggerer: requests per poke interval against N"
REPORTING = "/api/v3/reporting"
SITES = 3
ROOMS_PER_REQUEST = 30  # Butlr's guidance for ranges up to 2 h (the sensors' check span is 1 h)


def rooms_of_sites(emu: EmulatorProcess, count: int) -> list[tuple[str, str]]:
    """``count`` rooms, ``(room, site timezone)``, taken in turn from the org's first three sites."""
    sites: dict[str, tuple[str, list[str]]] = {}
    for site in emu.call("rooms_by_site"):
        if len(sites) < SITES:
            sites[site["id"]] = (site["timezone"] or "UTC", site["rooms"])
    picked = []
    for i in range(count):
        tz, rooms = list(sites.values())[i % SITES]
        picked.append((rooms[i // SITES], tz))
    return picked


def make_triggers(
    rooms: list[tuple[str, str]], *, share: bool, deadline: float, interval: float
) -> list[Any]:
    from airflow_provider_butlr.sensors.butlr import ButlrDataCompleteSensor
    from airflow_provider_butlr.triggers.butlr import ButlrTrigger

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    triggers = []
    for room, tz in rooms:
        sensor = ButlrDataCompleteSensor(
            task_id="wait",
            butlr_conn_id=BENCH_CONN_ID,
            rooms=[room],
            start=end - timedelta(hours=1),
            stop=end,
            timezone=tz,
            grace_period=0,
            deferrable=True,
        )
        plan = sensor.build_plan({}).validate().to_dict()  # type: ignore[arg-type]
        triggers.append(
            ButlrTrigger(
                plan=plan,
                deadline=deadline,
                butlr_conn_id=BENCH_CONN_ID,
                poll_interval=interval,
                max_consecutive_failures=1000,
                share_polls=share,
            )
        )
    return triggers


async def _run(triggers: list[Any]) -> list[dict[str, Any]]:
    from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook

    async with ButlrAsyncHook(BENCH_CONN_ID) as hook:
        await hook.aget_token()  # one login before: the triggers find a fresh token

    async def one(trigger: Any) -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        return {}

    return list(await asyncio.gather(*(one(t) for t in triggers)))


def run_once(
    emu: EmulatorProcess, rooms: list[tuple[str, str]], *, share: bool, interval: float, rounds: int
) -> dict[str, Any]:
    from benchmarks import butlr_client

    butlr_client.clear_token_cache()
    # ``rounds`` intervals of polling, after the start of N lone triggers (each opens its own client:
    # up to ~0.1 s each on a loaded 2-core machine); the same deadline for both contenders, half way
    # between two ticks of the grid, so that it never cuts a shared poll in flight
    after = time.time() + (rounds + 0.5) * interval + 0.1 * len(rooms) - GRID_OFFSET
    deadline = math.ceil(after / interval) * interval + GRID_OFFSET + interval / 2
    triggers = make_triggers(rooms, share=share, deadline=deadline, interval=interval)
    emu.reset_counters()
    cpu, wall = time.process_time(), time.perf_counter()
    events = asyncio.run(_run(triggers))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    requests = emu.requests(REPORTING)
    per_tick: dict[int, int] = {}
    for stamp in emu.call("request_times", path=REPORTING):
        tick = round((stamp - GRID_OFFSET) / interval)
        per_tick[tick] = per_tick.get(tick, 0) + 1
    polls = sum(int(e.get("polls", 0)) for e in events)
    per_trigger = polls / len(triggers)
    return {
        "sensors": len(triggers),
        "requests": requests,
        "polls": polls,
        "polls_per_sensor": per_trigger,
        "requests_per_interval": ratio(requests, per_trigger),
        "cpu": cpu,
        "cpu_per_interval": ratio(cpu, per_trigger),
        "seconds": wall,
        "most_in_one_interval": max(per_tick.values(), default=0) if share else math.nan,
        "statuses": sorted({str(e.get("status")) for e in events}),
    }


def run(settings: Settings, emu: EmulatorProcess) -> ScenarioResult:
    sizes = [1, 10, 50, 200] if not settings.quick else [1, 20]
    interval = 2.0 if not settings.quick else 1.0
    rounds = settings.pick(3, 2)
    pairs = {len(sites): sites for sites in [rooms_of_sites(emu, n) for n in sizes]}
    emu.set_config(reporting_incomplete_minutes=180)  # nothing becomes final while we watch
    figures: dict[str, dict[str, Any]] = {}
    try:
        for n, rooms in pairs.items():
            for share in (False, True):
                name = f"N={n}, {'shared (clock grid)' if share else 'each alone (share_polls=False)'}"
                figures[name] = run_once(emu, rooms, share=share, interval=interval, rounds=rounds)
    finally:
        emu.set_config(reporting_incomplete_minutes=15)

    result = ScenarioResult(
        key=KEY, title=TITLE, method=(__doc__ or "").split("Method: ")[-1].replace("\n", " ")
    )
    for name, f in figures.items():
        result.lines.append(
            Line(
                name,
                f"{f['requests_per_interval']:.1f} requests per poke interval "
                f"({f['requests_per_interval']:.0f}/min at poke_interval=60 s; {f['requests']} requests, "
                f"{f['polls_per_sensor']:.1f} polls per sensor); triggerer CPU {f['cpu']:.2f} s in all, "
                f"{f['cpu_per_interval'] * 1000:.0f} ms per interval (start included)",
                f,
            )
        )
    largest = max(pairs)
    shared, alone = (
        figures[f"N={largest}, {m}"] for m in ("shared (clock grid)", "each alone (share_polls=False)")
    )
    batches = sum(-(-len(pairs[largest][i::SITES]) // ROOMS_PER_REQUEST) for i in range(SITES))
    result.ratios = {
        f"requests_per_interval_alone_over_shared_n{largest}": ratio(
            alone["requests_per_interval"], shared["requests_per_interval"]
        ),
        f"cpu_per_interval_alone_over_shared_n{largest}": ratio(
            alone["cpu_per_interval"], shared["cpu_per_interval"]
        ),
    }
    result.targets = [
        Target(
            f"{largest} deferred sensors on {SITES} sites: requests per poke interval "
            f"(limit: sites + batching = {batches} requests of <= {ROOMS_PER_REQUEST} rooms)",
            shared["requests_per_interval"],
            float(batches),
            "<=",
        ),
        Target(
            f"{largest} deferred sensors on {SITES} sites: most requests the server saw in one poke interval",
            float(shared["most_in_one_interval"]),
            float(batches),
            "<=",
        ),
        Target(
            f"{largest} deferred sensors, each alone: requests per poke interval (today: one per sensor)",
            alone["requests_per_interval"],
            float(largest),
            ">=",
        ),
    ]
    result.notes.append(
        "Requests per interval of the shared triggers grow with the sites and 30-room batches, not with N; "
        "alone they grow with N. The worker's own first check (one request per sensor before it defers) is "
        "not the triggerer's and is not counted."
    )
    return result
