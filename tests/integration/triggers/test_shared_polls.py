"""Many deferred sensors in one triggerer share their polls: real triggers on one event loop against
the emulator.

Every trigger of a run starts in the same instant (time-machine puts the clock at a fixed second,
ticking), so they wake on the same tick of the clock grid; the emulator's request log counts what
the server saw. They must send one request per site (and batch of 30 rooms) per poll, where each
alone sends its own, and every trigger must judge exactly what a worker's poke of its own plan sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
from airflow_provider_butlr.hooks.shared_polls import shared_polls
from airflow_provider_butlr.polling.plans import PollPlan
from airflow_provider_butlr.sensors.butlr import ButlrDataCompleteSensor, ButlrOccupancySensor
from airflow_provider_butlr.testing.timeseries.series import series_assets
from airflow_provider_butlr.triggers.butlr import ButlrTrigger

REPORTING = "/api/v3/reporting"
GRAPHQL = "/api/v3/graphql"
WINDOW_END = datetime(2025, 11, 10, 14, tzinfo=UTC)  # long final in the emulator's data
START = datetime(2025, 11, 12, 9, 0, 0, tzinfo=UTC)  # a whole second: ticks at START + 0.25 s + k * interval
INTERVAL = 0.5


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(START, tick=True) as traveller:
        yield traveller


def rooms_by_site(emu: Any, per_site: int) -> dict[str, list[str]]:
    """``per_site`` rooms with data in each site, keyed by the site's timezone."""
    found: dict[str, list[str]] = {}
    for room in series_assets(emu.org, "room_occupancy", emu.config.seed):
        floor = emu.org.rooms_by_id[room].floor_id
        found.setdefault(emu.org.site_timezone(floor), []).append(room)
    return {tz: ids[:per_site] for tz, ids in found.items()}


def complete_plan(rooms: list[str], tz: str) -> dict[str, Any]:
    """The plan of a deferred ButlrDataCompleteSensor for these rooms (built by the sensor itself)."""
    sensor = ButlrDataCompleteSensor(
        task_id="wait",
        rooms=rooms,
        start=WINDOW_END - timedelta(hours=1),
        stop=WINDOW_END,
        timezone=tz,
        grace_period=0,
        deferrable=True,
    )
    return sensor.build_plan({}).validate().to_dict()  # type: ignore[arg-type]


def occupancy_plan(room: str, threshold: float) -> dict[str, Any]:
    sensor = ButlrOccupancySensor(task_id="occ", rooms=[room], op="<=", threshold=threshold, deferrable=True)
    return sensor.build_plan({}).validate().to_dict()  # type: ignore[arg-type]


def triggers(
    plans: Sequence[dict[str, Any]],
    *,
    share: bool = True,
    duration: float = 10.0,
    interval: float = INTERVAL,
    **kwargs: Any,
) -> list[ButlrTrigger]:
    hook_params = {"retry_wait_initial": 0.01, "retry_wait_max": 0.02, **kwargs.pop("hook_params", {})}
    return [
        ButlrTrigger(
            plan=plan,
            deadline=START.timestamp() + duration,
            poll_interval=interval,
            hook_params=hook_params,
            share_polls=share,
            **kwargs,
        )
        for plan in plans
    ]


async def run_all(group: Sequence[ButlrTrigger], clock: Any, at: datetime = START) -> list[dict[str, Any]]:
    """Every trigger's one event, all started at ``at`` (as a triggerer runs them).

    The token is fetched first: sixty lone triggers reading the token store at once would otherwise
    spend their short wait in its threads (the point here is the requests, not the login)."""
    async with ButlrAsyncHook(group[0].butlr_conn_id) as hook:
        await hook.aget_token()
    clock.move_to(at - timedelta(seconds=0.2))  # the first tick is then at + 0.25 s, for every trigger

    async def one(trigger: ButlrTrigger) -> dict[str, Any]:
        events = [event.payload async for event in trigger.run()]
        assert len(events) == 1, events
        return events[0]

    return list(await asyncio.gather(*(one(t) for t in group)))


def assert_own_answers(
    events: Sequence[dict[str, Any]], plans: Sequence[dict[str, Any]], at: datetime
) -> None:
    """Each trigger judged what a worker's poke of its own plan sees: its own requests, alone."""
    hook = ButlrHook()
    try:
        for event, plan in zip(events, plans, strict=True):
            verdict, _ = hook.poll(PollPlan.from_dict(plan), at.timestamp() + 0.25)
            if verdict.met:
                assert event["status"] == "success" and event["message"] == verdict.message
                drop = {"checked_at"}
                assert {k: v for k, v in event["summary"].items() if k not in drop} == {
                    k: v for k, v in verdict.details.items() if k not in drop
                }
            else:
                assert event["status"] == "timeout" and verdict.message in event["message"], (event, verdict)
    finally:
        hook.close()


def sent(emu: Any, path: str = REPORTING) -> int:
    count = emu.counters.requests(path)
    emu.counters.reset()
    return count


async def test_sixty_sensors_send_one_request_per_site_and_get_their_own_answers(
    butlr_conn: Any, clock: Any
) -> None:
    emu = butlr_conn
    sites = rooms_by_site(emu, 20)
    assert len(sites) == 3 and all(len(ids) == 20 for ids in sites.values())
    plans = [complete_plan([room], tz) for tz, ids in sites.items() for room in ids]
    events = await run_all(triggers(plans), clock)
    assert sent(emu) == 3  # one per site (20 rooms fit one request of 30), where each alone sends 60
    assert {e["status"] for e in events} == {"success"}  # the window is final for every room
    assert all(e["summary"]["assets_checked"] == 1 for e in events)  # each judged its own room only
    assert_own_answers(events, plans, START)


async def test_every_poll_round_sends_one_request_per_site_and_batch(butlr_conn: Any, clock: Any) -> None:
    """Sensors that keep waiting: requests per poll interval, round after round."""
    emu = butlr_conn
    sites = rooms_by_site(emu, 32)
    plans = [complete_plan([room], tz) for tz, ids in sites.items() for room in ids]
    emu.faults.add(path=REPORTING, kind="status", status=503)  # nothing ever completes
    group = triggers(
        plans, duration=3.2, interval=1.0, max_consecutive_failures=100, hook_params={"max_retries": 0}
    )
    events = await run_all(group, clock)
    assert max(e["polls"] for e in events) == 3  # at START + 0.25, 1.25 and 2.25 s; the deadline ends it
    batches = sum(-(-len(ids) // 30) for ids in sites.values())  # per site, 30 rooms per request
    assert batches == 5 and len(plans) == 88  # three sites: 32, 32 and 24 rooms with data
    rounds: dict[int, int] = {}
    for record in emu.counters.log:
        if record.path == REPORTING:
            tick = round(record.timestamp - START.timestamp() - 0.25)
            rounds[tick] = rounds.get(tick, 0) + 1
    assert sorted(rounds) == [0, 1, 2]
    assert all(count <= batches for count in rounds.values()), rounds  # not one per sensor (88)


async def test_a_bad_request_of_one_sensor_does_not_fail_its_neighbours(butlr_conn: Any, clock: Any) -> None:
    emu = butlr_conn
    tz, ids = next(iter(rooms_by_site(emu, 10).items()))
    plans = [complete_plan([room], tz) for room in ids] + [complete_plan(["room_doesnotexist"], tz)]
    # the server refuses any request naming the unknown room (400), the merged one included
    emu.faults.add(
        path=REPORTING, kind="status", status=400, when=lambda body: "room_doesnotexist" in json.dumps(body)
    )
    events = await run_all(triggers(plans), clock)
    assert [e["status"] for e in events] == ["success"] * 10 + ["error"]
    assert "HTTP 400" in events[-1]["message"] and "cannot recover" in events[-1]["message"]
    assert sent(emu) == 1 + 11  # the merged request, then each sensor's own


async def test_a_server_error_reaches_every_member_as_it_would_have_alone(
    butlr_conn: Any, clock: Any
) -> None:
    emu = butlr_conn
    tz, ids = next(iter(rooms_by_site(emu, 10).items()))
    emu.faults.add(path=REPORTING, kind="status", status=503)
    group = triggers(
        [complete_plan([room], tz) for room in ids],
        share=True,
        max_consecutive_failures=1,
        hook_params={"max_retries": 0},
    )
    events = await run_all(group, clock)
    assert {e["status"] for e in events} == {"error"}
    assert all("HTTP 503" in e["message"] for e in events)
    assert sent(emu) == 1  # one merged request failed: not re-asked ten times


async def test_identical_polls_are_sent_once(butlr_conn: Any, clock: Any) -> None:
    plan = {
        "requests": [{"endpoint": GRAPHQL, "json": {"query": "{ sites { data { id } } }"}}],
        "conditions": [{"type": "value_at", "path": "data.sites.data.0.id", "op": "!=", "value": None}],
    }
    events = await run_all(triggers([plan] * 10), clock)
    assert {e["status"] for e in events} == {"success"}
    assert sent(butlr_conn, GRAPHQL) == 1


async def test_occupancy_sensors_share_presence_and_traffic_requests(butlr_conn: Any, clock: Any) -> None:
    """Relative windows (the latest 20 minutes) render alike on one tick: 2 requests for 30 sensors."""
    emu = butlr_conn
    _, ids = next(iter(rooms_by_site(emu, 30).items()))
    now = datetime(2025, 11, 11, 14, tzinfo=UTC)  # a weekday afternoon: people about
    plans = [occupancy_plan(room, threshold=i % 3) for i, room in enumerate(ids)]

    # one poll at now + 0.25 s; the sensors not met time out at now + 1.2 s, before the next
    group = triggers(plans, duration=1.2, interval=1.0)
    for trigger in group:
        trigger.deadline = now.timestamp() + 1.2
    events = await run_all(group, clock, now)
    assert sent(emu) == 2  # where each alone sends 2: 60
    assert {e["status"] for e in events} == {"success", "timeout"}  # some met, some not
    assert_own_answers(events, plans, now)


async def test_members_come_and_go_and_the_last_one_closes_the_client(butlr_conn: Any, clock: Any) -> None:
    tz, ids = next(iter(rooms_by_site(butlr_conn, 3).items()))
    waiting = triggers([complete_plan([room], tz) for room in ids], duration=30)
    clock.move_to(START)
    tasks = [asyncio.ensure_future(anext(t.run())) for t in waiting]
    await asyncio.sleep(0.1)
    polls = shared_polls("butlr_default", waiting[0].hook_params)
    assert polls is not None and polls.members == 3
    client = polls.hook._client
    assert client is not None and not client.is_closed

    tasks[0].cancel()  # one sensor is cleared while the others wait
    with contextlib.suppress(asyncio.CancelledError):
        await tasks[0]
    await waiting[0].cleanup()  # what the triggerer calls after: harmless
    assert polls.members == 2 and not client.is_closed
    done = [(await task).payload for task in tasks[1:]]  # the others still poll, and succeed
    assert {e["status"] for e in done} == {"success"}
    for trigger in waiting[1:]:
        await trigger.cleanup()
    assert polls.members == 0 and client.is_closed
    assert shared_polls("butlr_default", waiting[0].hook_params) is None


async def test_other_connections_and_options_poll_apart(
    butlr_conn: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_OTHER", connection_json(butlr_conn))
    tz, ids = next(iter(rooms_by_site(butlr_conn, 2).items()))
    plans = [complete_plan([room], tz) for room in ids]
    group = triggers(plans) + triggers(plans, hook_params={"max_retries": 1})
    other = triggers(plans)
    for trigger in other:
        trigger.butlr_conn_id = "butlr_other"
    events = await run_all(group + other, clock)
    assert {e["status"] for e in events} == {"success"}
    assert sent(butlr_conn) == 3  # one per connection and options
