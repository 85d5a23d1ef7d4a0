"""Scenario 1: logins per 1,000 API calls across 10 hook instances in one process."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import butlr_client
from benchmarks.common import Line, ScenarioResult, Settings, Target, median
from benchmarks.contenders import HttpHookClient, login_body, small_reporting_body
from benchmarks.emulator_process import EmulatorProcess

KEY = "logins"
TITLE = "Logins per 1,000 API calls (10 hook instances, one process)"
HOOKS = 10
START = datetime(2026, 11, 2, 9, tzinfo=UTC)


def run(settings: Settings, emu: EmulatorProcess) -> ScenarioResult:
    calls_per_hook = settings.pick(100, 20)
    rounds = settings.pick(3, 1)
    rooms = emu.asset_ids("rooms", 20)
    bodies = [
        small_reporting_body(rooms[i % len(rooms)], START + timedelta(hours=i % 48))
        for i in range(calls_per_hook)
    ]
    _, client_id, client_secret, audience = emu.credentials()
    login = login_body(client_id, client_secret, audience)

    def ours_one_task(_: int) -> None:
        hook = butlr_client.new_hook()
        for body in bodies:
            butlr_client.reporting(hook, body)
        hook.close()

    def httphook_one_task(_: int) -> None:
        client = HttpHookClient(login)
        client.log_in()  # a login per task: what a DAG author does with HttpHook today
        for body in bodies:
            client.reporting(body)

    def measure(task: Any, threads: int) -> dict[str, float]:
        butlr_client.clear_token_cache()
        emu.reset_counters()
        started = time.perf_counter()
        if threads == 1:
            for i in range(HOOKS):
                task(i)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(task, range(HOOKS)))
        seconds = time.perf_counter() - started
        logins = emu.logins()
        calls = emu.requests() - logins
        return {"logins": logins, "calls": calls, "per_1000": 1000.0 * logins / calls, "seconds": seconds}

    variants = {
        "butlr hook, 10 sequential tasks": lambda: measure(ours_one_task, 1),
        "butlr hook, 10 concurrent tasks (threads)": lambda: measure(ours_one_task, HOOKS),
        "HttpHook + login per task, sequential": lambda: measure(httphook_one_task, 1),
        "HttpHook + login per task, 10 threads": lambda: measure(httphook_one_task, HOOKS),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    names = list(variants)
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(variants[name]())

    result = ScenarioResult(
        key=KEY,
        title=TITLE,
        method=(
            f"{HOOKS} hook instances x {calls_per_hook} small reporting calls each, in one process, "
            f"token cache cleared and emulator counters reset before each variant; {rounds} interleaved "
            "round(s); logins counted by the emulator. Token lifetime 3600 s, so the limit is 1 login."
        ),
    )
    for name, runs in results.items():
        per_1000 = median([r["per_1000"] for r in runs])
        result.lines.append(
            Line(
                name,
                f"{per_1000:.0f} logins / 1,000 calls ({median([r['logins'] for r in runs]):.0f} logins, "
                f"{median([r['calls'] for r in runs]):.0f} calls, {median([r['seconds'] for r in runs]):.2f} s)",
                {
                    "logins_per_1000_calls": per_1000,
                    "logins": median([r["logins"] for r in runs]),
                    "calls": median([r["calls"] for r in runs]),
                    "seconds": median([r["seconds"] for r in runs]),
                    "runs": runs,
                },
            )
        )
    ours = max(median([r["per_1000"] for r in results[n]]) for n in names[:2])
    theirs = median([r["per_1000"] for r in results[names[2]]])
    result.ratios["httphook_logins_over_ours"] = theirs / ours if ours else float("inf")
    result.targets.append(
        Target(
            "butlr hook: logins per 1,000 calls (limit: 1 per token lifetime)",
            ours,
            1000.0 / (HOOKS * calls_per_hook),
            "<=",
        )
    )
    return result
