"""ButlrOccupancyEventTrigger against the emulator, with the clock moved by time-machine.

time-machine moves ``time.time()`` for the trigger and the emulator together (the emulator's clock
follows it); the event loop's monotonic clock is left alone, so the trigger's sleeps are real and
short (``poll_interval`` 0.05 s). The emulator's data lags ``reporting_missing_minutes`` (5).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.polling.occupancy import CrossingLedger, find_crossing
from airflow_provider_butlr.testing.timeseries.series import minute_values, series_assets
from airflow_provider_butlr.triggers.occupancy_events import ButlrOccupancyEventTrigger
from tests.conftest import TEST_CLIENT_SECRET

REPORTING = "/api/v3/reporting"
DAY = datetime(2025, 11, 11, tzinfo=UTC)
FOR = 5  # minutes the room must stay empty
MINUTE = timedelta(minutes=1)
REAL_SLEEP = asyncio.sleep  # the runner's own waits (a test records the trigger's asyncio.sleep calls)


@dataclass(frozen=True)
class Streak:
    start: datetime  # first empty minute
    stop: datetime  # first occupied minute after it


def empty_streaks(emu: Any, room: str, minimum: int) -> list[Streak]:
    """Ground truth: runs of at least ``minimum`` empty minutes, each after an occupied minute."""
    values = minute_values(
        emu.org, "room_occupancy", room, DAY + timedelta(hours=6), DAY + timedelta(hours=22), emu.config.seed
    )
    streaks, start, previous = [], None, None
    for moment, value in values:
        if value <= 0 and start is None and previous is not None and previous > 0:
            start = moment
        elif value > 0 and start is not None:
            if moment - start >= minimum * MINUTE:
                streaks.append(Streak(start, moment))
            start = None
        previous = value
    return streaks


def seen_at(emu: Any, minute_end: datetime) -> datetime:
    """The wall-clock time when the emulator's data reaches ``minute_end`` (its delay added)."""
    return minute_end + timedelta(minutes=emu.config.reporting_missing_minutes, seconds=30)


@pytest.fixture
def room_and_streaks(butlr_conn: Any) -> tuple[str, list[Streak]]:
    for room in series_assets(butlr_conn.org, "room_occupancy", butlr_conn.config.seed):
        streaks = empty_streaks(butlr_conn, room, FOR + 4)
        if len(streaks) >= 2:
            return room, streaks
    raise AssertionError("no room with two empty streaks in the seeded day")


def make_trigger(room: str, **kwargs: Any) -> ButlrOccupancyEventTrigger:
    kwargs.setdefault("op", "<=")
    kwargs.setdefault("threshold", 0)
    kwargs.setdefault("for_minutes", FOR)
    kwargs.setdefault("window_minutes", 30)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("retry_wait_initial", 0.01)
    kwargs.setdefault("retry_wait_max", 0.02)
    return ButlrOccupancyEventTrigger(rooms=[room], **kwargs)


class Runner:
    """Drives a trigger's event stream in a task; collects its events."""

    def __init__(self, stream: AsyncIterator[Any], trigger: ButlrOccupancyEventTrigger) -> None:
        self.trigger, self.events = trigger, []
        self.task = asyncio.ensure_future(self._drain(stream))

    async def _drain(self, stream: AsyncIterator[Any]) -> None:
        async for event in stream:
            self.events.append(event.payload)

    async def polls(self, count: int) -> None:
        """Wait until ``count`` more polls finished (so one ran wholly after a clock move)."""
        target = self.trigger.polls + count
        give_up = asyncio.get_running_loop().time() + 30
        while self.trigger.polls < target:
            if self.task.done():
                self.task.result()
            assert asyncio.get_running_loop().time() < give_up, "the trigger stopped polling"
            await REAL_SLEEP(0.01)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_fires_once_per_crossing_not_while_true_and_not_after_a_restart(
    butlr_conn: Any, room_and_streaks: tuple[str, list[Streak]]
) -> None:
    emu = butlr_conn
    room, (first, second, *_) = room_and_streaks
    with time_machine.travel(seen_at(emu, first.start + (FOR - 2) * MINUTE), tick=False) as clock:
        trigger = make_trigger(room)
        runner = Runner(trigger.run(), trigger)
        await runner.polls(2)
        assert runner.events == []  # empty for 3 minutes: not yet

        clock.move_to(seen_at(emu, first.start + (FOR + 1) * MINUTE))
        await runner.polls(3)
        assert len(runner.events) == 1
        event = runner.events[0]
        assert event["asset_id"] == room and event["kind"] == "rooms"
        assert event["crossed_at"] == first.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert event["occupancy"] == 0

        clock.move_to(seen_at(emu, first.start + (FOR + 3) * MINUTE))  # still empty
        await runner.polls(3)
        assert len(runner.events) == 1  # no duplicate while the condition stays true
        await runner.stop()

        # Triggerer restart: the trigger is re-created from its kwargs and polls the same data.
        classpath, kwargs = trigger.serialize()
        module, name = classpath.rsplit(".", 1)
        restarted = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
        runner = Runner(restarted.run(), restarted)
        await runner.polls(3)
        assert runner.events == []  # the crossing it had fired is not fired again

        clock.move_to(seen_at(emu, second.start + (FOR + 1) * MINUTE))  # occupied, then empty again
        await runner.polls(3)
        await runner.stop()
    assert [e["crossed_at"] for e in runner.events] == [second.start.strftime("%Y-%m-%dT%H:%M:%SZ")]


class DictStateStore:
    """The part of Airflow 3.3's ``AssetStateStoreAccessors`` a trigger uses, kept in a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)


async def test_with_the_asset_state_store_a_crossing_during_the_downtime_fires_once(
    butlr_conn: Any, room_and_streaks: tuple[str, list[Streak]]
) -> None:
    emu = butlr_conn
    room, (first, *_) = room_and_streaks
    store = DictStateStore()

    def started(trigger: ButlrOccupancyEventTrigger) -> Runner:
        trigger.asset_state_store = store  # what the 3.3 triggerer injects into event triggers
        return Runner(trigger.run(), trigger)

    with time_machine.travel(seen_at(emu, first.start - 2 * MINUTE), tick=False) as clock:
        runner = started(make_trigger(room))
        await runner.polls(2)  # armed on the data before the room emptied
        await runner.stop()  # the triggerer goes down...
        assert runner.events == []
        clock.move_to(seen_at(emu, first.start + (FOR + 2) * MINUTE))  # ...and the crossing completes
        runner = started(make_trigger(room))
        await runner.polls(3)
        await runner.stop()
        assert [e["crossed_at"] for e in runner.events] == [first.start.strftime("%Y-%m-%dT%H:%M:%SZ")]
        runner = started(make_trigger(room))  # another restart: nothing new
        await runner.polls(3)
        await runner.stop()
        assert runner.events == []

        # Without the store, a trigger re-created after the crossing treats it as already there.
        trigger = make_trigger(room)
        runner = Runner(trigger.run(), trigger)
        await runner.polls(3)
        await runner.stop()
        assert runner.events == []


async def test_sleeps_poll_interval_after_every_poll_errors_included(
    butlr_conn: Any, room_and_streaks: tuple[str, list[Streak]], monkeypatch: pytest.MonkeyPatch
) -> None:
    room, _ = room_and_streaks
    module = importlib.import_module(ButlrOccupancyEventTrigger.__module__)
    asked: list[float] = []

    async def recording_sleep(seconds: float, *args: Any) -> Any:
        asked.append(seconds)
        return await REAL_SLEEP(seconds, *args)

    monkeypatch.setattr(module.asyncio, "sleep", recording_sleep)
    butlr_conn.faults.add(path=REPORTING, kind="status", status=500, at_calls=[2, 3])
    trigger = make_trigger(room, poll_interval=0.1, max_retries=0)
    runner = Runner(trigger.run(), trigger)
    await runner.polls(6)
    await runner.stop()
    started = trigger.polls  # counted when a poll starts
    assert butlr_conn.counters.requests(REPORTING) >= 5  # the two failed polls among them
    assert started - 1 <= len(asked) <= started  # every finished poll, failed or not, was followed by a sleep
    # to the next tick of the 0.1 s grid the polls of a triggerer share: at least a quarter interval
    assert asked and all(0.025 <= seconds <= 0.125 + 1e-9 for seconds in asked), asked
    # the first poll is made at once, the others on ticks: at least one interval apart
    stamps = [r.timestamp for r in butlr_conn.counters.log if r.path == REPORTING][1:]
    assert all(later - earlier >= 0.09 for earlier, later in itertools.pairwise(stamps)), stamps


async def test_the_watchers_of_a_site_share_one_poll(butlr_conn: Any) -> None:
    """The shared stream (Airflow 3.3) polls the site once per interval; each watcher keeps its rooms."""
    emu = butlr_conn
    rooms = series_assets(emu.org, "room_occupancy", emu.config.seed)
    site = emu.org.site_of_floor(emu.org.rooms_by_id[rooms[0]].floor_id).id
    rooms = [r for r in rooms if emu.org.site_of_floor(emu.org.rooms_by_id[r].floor_id).id == site]
    watchers = [make_trigger(room, site=site) for room in rooms[:2]]
    keys = {w.shared_stream_key() for w in watchers}
    assert len(keys) == 1 and None not in keys
    assert make_trigger(rooms[0]).shared_stream_key() is None  # no site: its own poll

    _, kwargs = watchers[0].serialize()
    stream = ButlrOccupancyEventTrigger.open_shared_stream(kwargs)
    snapshots = [await anext(stream) for _ in range(2)]
    await stream.aclose()
    assert all(s["error"] is None for s in snapshots)
    site_rooms = set(snapshots[0]["ids"])
    assert set(rooms[:2]) <= site_rooms and len(site_rooms) > 2
    reporting = [r for r in emu.counters.log if r.path == REPORTING]
    batches = -(-len(site_rooms) // 30)
    assert len(reporting) == 2 * batches  # one poll per interval for the whole site, not one per watcher

    async def replay() -> AsyncIterator[Any]:
        for snapshot in snapshots:
            yield snapshot

    for watcher in watchers:  # each filters the same snapshots for its own room (no crossing is new)
        assert [e async for e in watcher.filter_shared_stream(replay())] == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rooms": ["r1"], "floors": ["f1"]}, "exactly one of rooms, floors, zones"),
        ({"rooms": ["r1"], "op": "lt"}, "op"),
        ({"rooms": ["r1"], "for_minutes": 0}, "for_minutes"),
        ({"rooms": ["r1"], "for_minutes": 30, "window_minutes": 30}, "window_minutes"),
        ({"rooms": ["r1"], "poll_interval": 0}, "poll_interval"),
        ({"zones": ["z1"], "source": "traffic"}, "source"),
        ({"rooms": ["r1"], "threshold": "0"}, "threshold"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=field):
        ButlrOccupancyEventTrigger(**kwargs)


def test_kwargs_round_trip_and_hold_no_secret(butlr_conn: Any) -> None:
    trigger = make_trigger("room_1", site="site_1")
    classpath, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    assert TEST_CLIENT_SECRET not in text
    assert ButlrOccupancyEventTrigger(**json.loads(text)).serialize() == (classpath, kwargs)


def test_a_streak_covering_the_whole_window_is_not_a_new_crossing() -> None:
    empty_all_along = [(60.0 * i, 0.0) for i in range(30)]
    assert find_crossing("r", empty_all_along, "<=", 0, 5) is None
    crossing = find_crossing("r", [(0.0, 2.0), *empty_all_along[1:]], "<=", 0, 5)
    assert crossing is not None and crossing.started_at == 60.0
    ledger = CrossingLedger()
    assert ledger.observe("r", empty_all_along, None) is False  # armed at the first data
    assert CrossingLedger.from_json(ledger.to_json()) == ledger


class Events(list):  # type: ignore[type-arg]
    """``triggering_asset_events`` as the task reads it (``items()``; Assets are unhashable on 3.0)."""

    def items(self) -> list[Any]:
        return list(self)


@pytest.mark.dag
async def test_example_dag_watches_each_room_and_requests_a_cleaning_per_event(
    butlr_conn: Any, airflow_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from tests.system.test_example_dags import load_dag

    emu = butlr_conn
    rooms = series_assets(emu.org, "room_occupancy", emu.config.seed)
    from example_dags.butlr_room_empty_events import EMULATOR_ROOM

    assert EMULATOR_ROOM in rooms  # the default works against the bundled emulator
    rooms = [r for r in rooms if empty_streaks(emu, r, FOR + 4)][:2]
    monkeypatch.setenv("BUTLR_EVENT_ROOMS", f"{rooms[0]},{rooms[1]}")
    monkeypatch.setenv("BUTLR_EVENT_EMPTY_MINUTES", str(FOR))
    monkeypatch.setenv("BUTLR_EVENT_POLL_INTERVAL", "0.05")
    dag = load_dag("butlr_room_empty_events")
    assets = list(dag.timetable.asset_condition.objects)
    assert [a.uri for a in assets] == [f"butlr://api.butlr.io/rooms/{r}/empty" for r in rooms[:2]]
    trigger = assets[0].watchers[0].trigger
    assert isinstance(trigger, ButlrOccupancyEventTrigger)
    assert (trigger.ids, trigger.for_minutes, trigger.poll_interval) == ((rooms[0],), FOR, 0.05)

    # The watcher's trigger, run against the emulator through the room's first crossing ...
    streak = empty_streaks(emu, rooms[0], FOR + 4)[0]
    with time_machine.travel(seen_at(emu, streak.start - MINUTE), tick=False) as clock:
        runner = Runner(trigger.run(), trigger)
        await runner.polls(2)
        clock.move_to(seen_at(emu, streak.start + (FOR + 1) * MINUTE))
        await runner.polls(3)
        await runner.stop()
    [payload] = runner.events
    # ... gives the event the DAG's task reads from triggering_asset_events, in the shape Airflow's
    # Trigger.submit_event stores it (the payload under extra["payload"]; the deployment check reads
    # the same from a real triggerer's event).
    cleaning = dag.get_task("request_cleaning").python_callable
    event = SimpleNamespace(extra={"from_trigger": True, "payload": payload})
    requests = cleaning(triggering_asset_events=Events([(assets[0], [event])]))
    assert requests == [
        {"asset": assets[0].uri, "room": rooms[0], "empty_since": streak.start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    ]
    assert cleaning(triggering_asset_events=Events([])) == []


@pytest.mark.dag
def test_example_dag_runs_by_hand(butlr_conn: Any, airflow_db: str) -> None:
    import pendulum

    from tests.system.test_example_dags import run

    run("butlr_room_empty_events", pendulum.datetime(2025, 11, 11, tz="UTC"))


async def test_airflow_shared_stream_manager_runs_one_poll_for_two_watchers_of_a_site(
    butlr_conn: Any, room_and_streaks: tuple[str, list[Streak]]
) -> None:
    """Airflow 3.3's own SharedStreamManager (what the triggerer runs) drives the two watchers."""
    shared_stream = pytest.importorskip(
        "airflow.triggers.shared_stream", reason="shared streams need Airflow 3.3"
    )
    emu = butlr_conn
    room, (first, *_) = room_and_streaks
    site = emu.org.site_of_floor(emu.org.rooms_by_id[room].floor_id).id
    other = next(
        r
        for r in series_assets(emu.org, "room_occupancy", emu.config.seed)
        if r != room and emu.org.site_of_floor(emu.org.rooms_by_id[r].floor_id).id == site
    )
    watchers = [make_trigger(room, site=site), make_trigger(other, site=site)]
    manager = shared_stream.SharedStreamManager(cohort_grace_period=0.2)  # both join before the first poll
    with time_machine.travel(seen_at(emu, first.start - MINUTE), tick=False) as clock:
        runners = [
            Runner(
                w.filter_shared_stream(manager.subscribe(trigger_id=i, trigger=w, key=w.shared_stream_key())),
                w,
            )
            for i, w in enumerate(watchers)
        ]
        await runners[0].polls(2)
        clock.move_to(seen_at(emu, first.start + (FOR + 1) * MINUTE))
        await runners[0].polls(3)
        for runner in runners:
            await runner.stop()
        await manager.stop_all()
    assert [e["crossed_at"] for e in runners[0].events] == [first.start.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert all(e["asset_id"] == other for e in runners[1].events)
    site_rooms = [
        r for r in emu.org.rooms_by_id if emu.org.site_of_floor(emu.org.rooms_by_id[r].floor_id).id == site
    ]
    polls = max(w.polls for w in watchers)
    reporting = emu.counters.requests(REPORTING)
    batches = -(-len(site_rooms) // 30)
    assert (
        polls * batches <= reporting <= (polls + 1) * batches
    )  # one site poll per interval, not one per watcher
