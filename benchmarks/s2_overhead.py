"""Scenario 2: per-call overhead of small reporting calls on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from benchmarks import butlr_client
from benchmarks.common import Line, ScenarioResult, Settings, Target, interleaved, median, percentile, ratio
from benchmarks.contenders import HttpHookClient, login_body, raw_login, raw_reporting, small_reporting_body
from benchmarks.emulator_process import EmulatorProcess

KEY = "overhead"
TITLE = "Per-call latency, small reporting calls on loopback"
START = datetime(2026, 11, 2, 0, tzinfo=UTC)
RAW = "raw requests.Session (token fetched once)"
OURS = "ButlrHook"
HTTP = "HttpHook.run() + bearer header"


def run(settings: Settings, emu: EmulatorProcess) -> ScenarioResult:
    calls = settings.pick(2000, 200)
    per_round = 100
    rounds = calls // per_round
    warmup = settings.pick(50, 10)
    rooms = emu.asset_ids("rooms", 20)
    bodies = [
        small_reporting_body(rooms[i % len(rooms)], START + timedelta(hours=i % 240)) for i in range(calls)
    ]
    url, client_id, client_secret, audience = emu.credentials()
    login = login_body(client_id, client_secret, audience)

    session = requests.Session()
    token = raw_login(session, url, login)
    butlr_client.clear_token_cache()
    hook = butlr_client.new_hook()
    http = HttpHookClient(login)
    http.log_in()
    call: dict[str, Callable[[dict[str, Any]], Any]] = {
        RAW: lambda body: raw_reporting(session, url, token, body),
        OURS: lambda body: butlr_client.reporting(hook, body),
        HTTP: http.reporting,
    }
    for fn in call.values():  # warm-up: connections, token cache, code paths
        for body in bodies[:warmup]:
            fn(body)

    def timed(name: str) -> Callable[[int], list[float]]:
        def one_round(round_no: int) -> list[float]:
            fn = call[name]
            samples = []
            for body in bodies[round_no * per_round : (round_no + 1) * per_round]:
                started = time.perf_counter()
                fn(body)
                samples.append(time.perf_counter() - started)
            return samples

        return one_round

    samples = interleaved(rounds, {name: timed(name) for name in call})
    hook.close()
    session.close()

    result = ScenarioResult(
        key=KEY,
        title=TITLE,
        method=(
            f"{calls} calls per contender (1 room, 1 hour, one 1-hour window each; ~1 row), "
            f"{rounds} interleaved rounds of {per_round} calls with the starting contender rotated, "
            f"after {warmup} warm-up calls each; emulator in its own process; every contender parses "
            "the JSON body."
        ),
    )
    stats: dict[str, dict[str, float]] = {}
    for name in call:
        flat = [s for rnd in samples[name] for s in rnd]
        stats[name] = {
            "median_ms": 1000 * median(flat),
            "p95_ms": 1000 * percentile(flat, 95),
            "calls": len(flat),
        }
    raw_median = stats[RAW]["median_ms"]
    for name, figures in stats.items():
        figures["median_vs_raw"] = ratio(figures["median_ms"], raw_median)
        figures["p95_vs_raw"] = ratio(figures["p95_ms"], stats[RAW]["p95_ms"])
        result.lines.append(
            Line(
                name,
                f"median {figures['median_ms']:.2f} ms, p95 {figures['p95_ms']:.2f} ms "
                f"({figures['median_vs_raw']:.2f}x raw median)",
                figures,
            )
        )
    result.ratios = {
        "ours_over_raw_median": stats[OURS]["median_vs_raw"],
        "ours_over_raw_p95": stats[OURS]["p95_vs_raw"],
        "httphook_over_ours_median": ratio(stats[HTTP]["median_ms"], stats[OURS]["median_ms"]),
    }
    result.targets = [
        Target(
            "ButlrHook median within 1.15x of raw requests", stats[OURS]["median_vs_raw"], 1.15, "<=", "x"
        ),
        Target(
            "ButlrHook faster than HttpHook.run() (HttpHook median / ours)",
            result.ratios["httphook_over_ours_median"],
            1.0,
            ">=",
            "x",
        ),
    ]
    return result
