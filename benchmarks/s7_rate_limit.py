"""Scenario 7: the export against realistic latency and a server-side rate limit (429 + Retry-After).

Two workloads against an emulator that adds 200 ms to every data request and answers 429 with
``Retry-After`` beyond 60 requests per minute:

* the issue's export (200 rooms x 30 days, 15-minute windows): the operator's planned requests vs
  the HttpHook loop's, and vs the floor (the same requests downloaded back to back, undecoded);
* many small requests (200 rooms x 1 day, hourly, 2 rooms per request: 100 requests): the operator
  at ``max_concurrency=5`` vs the HttpHook loop (tenacity retries on 429), vs the rate limit's floor
  (request ``limit + 1`` cannot start before the first one's minute is over: ``60 s x
  (requests - 1) // limit``).
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import Line, ScenarioResult, Settings, Target, ratio
from benchmarks.emulator_process import EmulatorProcess
from benchmarks.s3_export import export_once

KEY = "rate_limit"
TITLE = "Export under 200 ms latency and a 60 requests/minute server limit"
LATENCY = 0.2
PER_MINUTE = 60
MiB = 2**20


def _emulator_supports_rate_limits() -> bool:
    with EmulatorProcess(size="small") as emu:
        try:
            emu.set_config(rate_limit_per_minute=None)
        except RuntimeError:
            return False
    return True


def run(settings: Settings, emu: EmulatorProcess | None = None) -> ScenarioResult:
    limited = _emulator_supports_rate_limits()
    config: dict[str, Any] = {"latency": LATENCY}
    if limited:
        config["rate_limit_per_minute"] = PER_MINUTE
    rooms = 200
    days = settings.pick(30, 2)
    small_rooms = settings.pick(200, 40)
    contenders: dict[str, tuple[str, int, int, str, dict[str, Any]]] = {
        "ButlrReportingOperator, 15m x 30 days": ("operator", rooms, days, "15m", {}),
        "HttpHook loop, 15m x 30 days": ("httphook", rooms, days, "15m", {}),
        "floor: the loop's requests, undecoded": ("floor", rooms, days, "15m", {}),
        "ButlrReportingOperator, 15m x 30 days, max_concurrency=2": (
            "operator",
            rooms,
            days,
            "15m",
            {"max_concurrency": 2},
        ),
        "ButlrReportingOperator, 2 rooms/request, max_concurrency=5": (
            "operator",
            small_rooms,
            1,
            "1h",
            {"max_ids_per_request": 2, "max_concurrency": 5},
        ),
        "ButlrReportingOperator, 2 rooms/request, max_concurrency=5, extra max_requests_per_minute": (
            "operator",
            small_rooms,
            1,
            "1h",
            {
                "max_ids_per_request": 2,
                "max_concurrency": 5,
                "connection_extra": {"max_requests_per_minute": PER_MINUTE},
            },
        ),
        "HttpHook loop, 2 rooms/request": ("httphook", small_rooms, 1, "1h", {"ids_per_batch": 2}),
    }
    figures: dict[str, dict[str, Any]] = {}
    result = ScenarioResult(
        key=KEY,
        title=TITLE,
        method=(
            f"emulator latency {LATENCY * 1000:.0f} ms per data request, server limit {PER_MINUTE} requests/min "
            "(429 + Retry-After beyond it); each contender in a fresh client process against a fresh emulator; "
            "one round. Floors: the big export's requests downloaded back to back without decoding (what the "
            "server and the latency cost before any client work); its latency bound, planned requests x "
            "latency, leaves the server's own time out; the small requests' floor is the rate limit's: "
            "60 s x (requests - 1) // limit."
        ),
    )
    for name, (mode, count, span_days, every, options) in contenders.items():
        run_figures = export_once(mode, count, span_days, settings.work_dir, every, config=config, **options)
        figures[name] = run_figures
        result.lines.append(
            Line(
                name,
                f"{run_figures['seconds']:.1f} s, {run_figures['requests']} requests "
                f"({run_figures['refused']} answered 429), {run_figures['rows']:,} rows, "
                f"peak RSS {run_figures['peak_rss'] / MiB:.0f} MiB",
                {k: run_figures[k] for k in ("seconds", "requests", "refused", "rows", "peak_rss")},
            )
        )
    big_op, big_loop, floor, big_op_2, small_op, small_limited, small_loop = (
        figures[name] for name in contenders
    )
    latency_bound = big_op["requests"] * LATENCY
    small_requests = -(-small_rooms // 2)
    rate_floor = 60.0 * ((small_requests - 1) // PER_MINUTE)
    result.ratios = {
        "operator_seconds_over_floor": ratio(big_op["seconds"], floor["seconds"]),
        "httphook_seconds_over_floor": ratio(big_loop["seconds"], floor["seconds"]),
        "operator_requests_over_httphook": ratio(big_op["requests"], big_loop["requests"]),
        "operator_concurrency_2_seconds_over_floor": ratio(big_op_2["seconds"], floor["seconds"]),
        "operator_seconds_over_latency_bound": ratio(big_op["seconds"], latency_bound),
        "small_operator_seconds_over_rate_floor": ratio(small_op["seconds"], rate_floor),
        "small_limited_operator_seconds_over_rate_floor": ratio(small_limited["seconds"], rate_floor),
        "small_limited_operator_answers_429": small_limited["refused"],
        "small_httphook_seconds_over_rate_floor": ratio(small_loop["seconds"], rate_floor),
    }
    if not limited:
        result.notes.append(
            "This emulator has no server-side rate limit (EmulatorConfig.rate_limit_per_minute): latency only; "
            "the rate-limit floor is still the one a 60/min server would impose."
        )
    result.notes.append(
        f"Before this work the operator asked 600 pages for the big export: at {PER_MINUTE}/min that alone is "
        f"{(600 - PER_MINUTE) / PER_MINUTE:.0f} minutes of rate-limit floor; rate floor of the small workload: "
        f"{rate_floor:.0f} s."
    )
    result.targets.append(
        Target(
            "wall time of the export / its floor",
            result.ratios["operator_seconds_over_floor"],
            1.2,
            "<=",
            "x",
        )
    )
    result.targets.append(
        Target(
            "wall time of the small-request export / the rate limit's floor",
            result.ratios["small_operator_seconds_over_rate_floor"],
            1.2,
            "<=",
            "x",
        )
    )
    if limited:
        result.targets.append(
            Target(
                "429 answers with the client-side limit (extra max_requests_per_minute) set to the server's",
                float(small_limited["refused"]),
                0,
                "<=",
            )
        )
    return result
